//! The two event envelopes (Event Grid schema and CloudEvents 1.0), read into one shape.
//!
//! Envelopes are read from [`EventView`]s (see `view.rs`) rather than derived structs so that key
//! casing, wrong value types and unknown fields can be tolerated element by element.

use std::borrow::Cow;

use http::HeaderMap;
use serde_json::{Map, Value};

use super::excerpt;
use super::view::{Data, DataView, EventView, Scalar};

/// Which envelope an element uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Schema {
    /// Event Grid schema (`eventType`, `topic`, `eventTime`).
    EventGrid,
    /// CloudEvents 1.0 (`specversion`, `type`, `source`, `time`).
    CloudEvents,
}

/// One event's envelope, whichever schema it came in, borrowed from its [`EventView`].
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Envelope<'v> {
    /// The schema it was read from.
    pub schema: Schema,
    /// `id` (a string, or a number rendered as one); trimmed.
    pub id: Option<Cow<'v, str>>,
    /// `eventType` / `type`; trimmed.
    pub event_type: Option<Cow<'v, str>>,
    /// `topic` / `source`; trimmed, `None` when empty.
    pub source: Option<Cow<'v, str>>,
    /// `subject`; trimmed, `None` when empty.
    pub subject: Option<Cow<'v, str>>,
    /// `eventTime` / `time`; trimmed, `None` when empty.
    pub time: Option<Cow<'v, str>>,
    /// `data`, as sent (an object, a JSON-encoded string, …).
    pub data: Option<&'v Data<'v>>,
}

/// The value of `key` in `obj`: the exact key first, else the first key equal ignoring ASCII case.
pub(crate) fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

impl EventView<'_> {
    /// The schema the element uses, from its keys: `specversion` wins over `eventType`.
    pub(crate) fn schema(&self) -> Option<Schema> {
        if self.has_specversion {
            Some(Schema::CloudEvents)
        } else if self.has_event_type {
            Some(Schema::EventGrid)
        } else {
            None
        }
    }

    /// The event type (`eventType` / `type` by schema), trimmed.
    pub(crate) fn type_text(&self, schema: Schema) -> Option<&str> {
        match schema {
            Schema::EventGrid => self.event_type.as_ref()?.text(),
            Schema::CloudEvents => self.type_.as_ref()?.text(),
        }
    }
}

/// A trimmed string value; `None` when absent, not a string, or empty after trimming.
fn text<'v>(value: Option<&'v Scalar<'_>>) -> Option<Cow<'v, str>> {
    value?.text().map(Cow::Borrowed)
}

/// An id: a trimmed non-empty string, or a number rendered as text.
fn id_text<'v>(value: Option<&'v Scalar<'_>>) -> Option<Cow<'v, str>> {
    match value? {
        Scalar::Number(n) => Some(Cow::Owned(n.to_string())),
        other => text(Some(other)),
    }
}

/// Reads the envelope of an object element. `Err` carries a reason when it uses neither schema.
pub(crate) fn envelope<'v>(view: &'v EventView<'_>) -> Result<Envelope<'v>, String> {
    let schema = view.schema().ok_or_else(|| {
        let keys = view.first_keys.list();
        excerpt(
            &format!("neither `specversion` (CloudEvents) nor `eventType` (Event Grid); keys {keys:?}"),
            180,
        )
    })?;
    let (event_type, source, time) = match schema {
        Schema::EventGrid => (&view.event_type, &view.topic, &view.event_time),
        Schema::CloudEvents => (&view.type_, &view.source, &view.time),
    };
    Ok(Envelope {
        schema,
        id: id_text(view.id.as_ref()),
        event_type: text(event_type.as_ref()),
        source: text(source.as_ref()),
        subject: text(view.subject.as_ref()),
        time: text(time.as_ref()),
        data: view
            .data
            .as_ref()
            .filter(|d| !matches!(d, Data::Scalar(Scalar::Null))),
    })
}

/// Whether the headers carry a CloudEvents binary-mode event.
pub(crate) fn has_binary_headers(headers: &HeaderMap) -> bool {
    headers.contains_key("ce-specversion")
}

/// A binary-mode event as the equivalent structured CloudEvent: attributes from the `ce-*` headers
/// (percent-decoded), `data` from the body (JSON; non-JSON text is kept as a string).
pub(crate) fn binary_event(headers: &HeaderMap, body: &[u8]) -> Value {
    let mut obj = Map::new();
    for (attr, header) in [
        ("specversion", "ce-specversion"),
        ("id", "ce-id"),
        ("type", "ce-type"),
        ("source", "ce-source"),
        ("subject", "ce-subject"),
        ("time", "ce-time"),
    ] {
        if let Some(raw) = headers.get(header) {
            obj.insert(attr.to_string(), Value::String(percent_decode(raw.as_bytes())));
        }
    }
    if !body.iter().all(u8::is_ascii_whitespace) {
        let data = match serde_json::from_slice::<Value>(body) {
            Ok(v) => v,
            // Not JSON: keep it as text so a Key Vault mapping can say why it is unusable.
            Err(_) => Value::String(String::from_utf8_lossy(body).into_owned()),
        };
        obj.insert("data".to_string(), data);
    }
    Value::Object(obj)
}

/// Decodes `%XX` escapes (CloudEvents HTTP binding, header values); invalid escapes stay as they are.
fn percent_decode(raw: &[u8]) -> String {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%'
            && let (Some(h), Some(l)) = (
                raw.get(i + 1).copied().and_then(hex),
                raw.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `data` as an object: an object as is, or a string holding JSON for one (bounded re-decoding).
pub(crate) fn data_object<'v, 'a>(
    data: Option<&'v Data<'a>>,
) -> Result<Option<Cow<'v, DataView<'a>>>, String> {
    match data {
        None => Ok(None),
        Some(Data::Object(view)) => Ok(Some(Cow::Borrowed(view))),
        // A JSON-encoded object may itself be encoded once more (Functions host double encoding).
        Some(Data::Scalar(value)) => Ok(decoded_object(value, 3)?.map(Cow::Owned)),
    }
}

/// A non-object `data` value: `null` or a blank string is no data, a string is decoded (at most
/// `rounds` times, counting this one), anything else is a reason.
fn decoded_object(value: &Scalar<'_>, rounds: usize) -> Result<Option<DataView<'static>>, String> {
    match value {
        Scalar::Null => Ok(None),
        Scalar::Str(s) if s.trim().is_empty() => Ok(None),
        Scalar::Str(s) => {
            let decoded = Data::decode(s)
                .map_err(|_| format!("data is a string that is not JSON: {:?}", excerpt(s.trim(), 60)))?;
            if rounds <= 1 {
                return Err("data is nested JSON-encoded strings too deep".to_string());
            }
            match decoded {
                Data::Object(view) => Ok(Some(view)),
                Data::Scalar(inner) => decoded_object(&inner, rounds - 1),
            }
        }
        other => Err(format!("data is a JSON {}, expected an object", other.kind())),
    }
}

/// The JSON kind of a value, for messages.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::eventgrid::view::Body;

    fn obj(v: Value) -> Value {
        assert!(v.is_object(), "not an object");
        v
    }

    fn view(v: &Value) -> EventView<'_> {
        match Body::from_value(v) {
            Ok(Body::Object(view)) => view,
            other => panic!("not an object: {other:?}"),
        }
    }

    fn detect(v: &Value) -> Option<Schema> {
        view(v).schema()
    }

    fn envelope_from_object(v: Value) -> Result<Envelope<'static>, String> {
        envelope(Box::leak(Box::new(view(Box::leak(Box::new(v))))))
    }

    fn data_view(v: Value) -> DataView<'static> {
        match Data::from_value(&v).unwrap() {
            Data::Object(view) => view.into_owned(),
            Data::Scalar(s) => panic!("not an object: {s:?}"),
        }
    }

    fn data_object(v: Option<&Value>) -> Result<Option<DataView<'static>>, String> {
        let data = v.map(|v| Data::from_value(v).unwrap());
        Ok(super::data_object(data.as_ref())?.map(|d| d.into_owned().into_owned()))
    }

    #[test]
    fn specversion_wins_over_event_type() {
        assert_eq!(
            detect(&obj(json!({"specversion": "1.0", "eventType": "x"}))),
            Some(Schema::CloudEvents)
        );
        assert_eq!(detect(&obj(json!({"eventType": "x"}))), Some(Schema::EventGrid));
        assert_eq!(detect(&obj(json!({"EventType": "x"}))), Some(Schema::EventGrid));
        assert_eq!(detect(&obj(json!({"type": "x"}))), None);
    }

    #[test]
    fn envelopes_trim_and_drop_empty_strings() {
        let env = envelope_from_object(obj(json!({
            "id": " 1 ", "eventType": " T ", "topic": "", "subject": "  ", "eventTime": 5, "data": null
        })))
        .unwrap();
        assert_eq!(env.id.as_deref(), Some("1"));
        assert_eq!(env.event_type.as_deref(), Some("T"));
        assert_eq!(env.source, None);
        assert_eq!(env.subject, None);
        assert_eq!(env.time, None);
        assert_eq!(env.data, None);
        let env = envelope_from_object(obj(json!({"specversion": "1.0", "id": 7, "type": "T"}))).unwrap();
        assert_eq!(env.id.as_deref(), Some("7"));
    }

    #[test]
    fn unknown_envelopes_are_explained_briefly() {
        let long_key = "k".repeat(10_000);
        let err = envelope_from_object(obj(json!({ long_key: 1 }))).unwrap_err();
        assert!(err.contains("neither"), "{err}");
        assert!(err.chars().count() <= 200, "{}", err.len());
    }

    #[test]
    fn header_values_are_percent_decoded() {
        assert_eq!(percent_decode(b"a%20b%2"), "a b%2");
        assert_eq!(percent_decode(b"%zz%41"), "%zzA");
        assert_eq!(percent_decode(b"%E2%82%AC"), "€");
    }

    #[test]
    fn data_may_be_an_object_or_json_encoded_once_or_twice() {
        let want = data_view(json!({"VaultName": "a"}));
        assert_eq!(
            data_object(Some(&json!({"VaultName": "a"}))).unwrap(),
            Some(want.clone())
        );
        assert_eq!(
            data_object(Some(&json!("{\"VaultName\":\"a\"}"))).unwrap(),
            Some(want.clone())
        );
        assert_eq!(
            data_object(Some(&json!("\"{\\\"VaultName\\\":\\\"a\\\"}\""))).unwrap(),
            Some(want)
        );
        assert_eq!(data_object(None).unwrap(), None);
        assert_eq!(data_object(Some(&json!(""))).unwrap(), None);
        assert!(data_object(Some(&json!([1]))).is_err());
        assert!(data_object(Some(&json!("not json"))).is_err());
        let deep = json!(
            serde_json::to_string(&json!(
                serde_json::to_string(&json!(serde_json::to_string(&json!("x")).unwrap())).unwrap()
            ))
            .unwrap()
        );
        assert!(data_object(Some(&deep)).is_err());
    }
}
