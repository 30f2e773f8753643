//! Webhook deliveries: content type and body shape → handshake or events.

use std::borrow::Cow;

use http::HeaderMap;
use serde_json::Value;

use super::keyvault::{Shared, classify, sent_type, to_key_vault_event};
use super::schema::{self, Schema, data_object, envelope, kind_of};
use super::view::{Body, DataView, EventView, Item, Items, Shape, read_slice, read_value, text};
use super::{Delivery, DeliveryError, Event, Events, Format, Rejected, cut, excerpt};
use crate::core::model::Cloud;

/// Event type of the Event Grid subscription validation event.
const VALIDATION_EVENT: &str = "Microsoft.EventGrid.SubscriptionValidationEvent";
/// Event type of the Event Grid subscription deletion event.
const DELETION_EVENT: &str = "Microsoft.EventGrid.SubscriptionDeletedEvent";

/// The media types Event Grid sends (or that are tolerated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Media {
    /// `application/json`.
    Json,
    /// `application/cloudevents+json`.
    CloudEvents,
    /// `application/cloudevents-batch+json`.
    CloudEventsBatch,
    /// `text/plain` (tolerated).
    Text,
    /// No (or an empty) `Content-Type` (tolerated).
    Missing,
}

/// The handshake the `aeg-event-type` header announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Handshake {
    /// `SubscriptionValidation`.
    Validation,
    /// `SubscriptionDeletion` (or `Unsubscribe`).
    Deletion,
}

/// Reads `Content-Type`, ignoring parameters and case.
fn media_type(headers: &HeaderMap) -> Result<Media, DeliveryError> {
    let Some(raw) = headers.get(http::header::CONTENT_TYPE) else {
        return Ok(Media::Missing);
    };
    let full = String::from_utf8_lossy(raw.as_bytes());
    let essence = full
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "" => Ok(Media::Missing),
        "application/json" => Ok(Media::Json),
        "application/cloudevents+json" => Ok(Media::CloudEvents),
        "application/cloudevents-batch+json" => Ok(Media::CloudEventsBatch),
        "text/plain" => Ok(Media::Text),
        _ => Err(DeliveryError::UnsupportedContentType(excerpt(full.trim(), 100))),
    }
}

/// Reads `aeg-event-type`; `Notification`, unknown values and a missing header are `None`.
fn handshake_header(headers: &HeaderMap) -> Option<Handshake> {
    let raw = headers.get("aeg-event-type")?;
    let value = String::from_utf8_lossy(raw.as_bytes());
    let value = value.trim();
    if value.eq_ignore_ascii_case("SubscriptionValidation") {
        Some(Handshake::Validation)
    } else if value.eq_ignore_ascii_case("SubscriptionDeletion") || value.eq_ignore_ascii_case("Unsubscribe")
    {
        Some(Handshake::Deletion)
    } else {
        None
    }
}

/// Parses one webhook delivery from Event Grid.
///
/// `headers` supply the content type, `aeg-event-type` and, in CloudEvents binary mode, the
/// `ce-*` attributes; `cloud` turns a bare `VaultName` into a vault host. See the module docs for
/// the detection rules and the mixed-batch policy.
pub fn parse_delivery(body: &[u8], headers: &HeaderMap, cloud: Cloud) -> Result<Delivery, DeliveryError> {
    let media = media_type(headers)?;
    let handshake = handshake_header(headers);
    let structured = matches!(media, Media::CloudEvents | Media::CloudEventsBatch);
    if !structured && schema::has_binary_headers(headers) {
        let event = schema::binary_event(headers, body);
        let items = match Body::from_value(&event) {
            Ok(Body::Object(view)) => vec![Item::Object(view)],
            _ => vec![Item::Other(kind_of(&event))],
        };
        return deliver(items, Format::CloudEventsBinary, handshake, cloud);
    }
    let cloudevents_media = media == Media::CloudEventsBatch || media == Media::CloudEvents;
    // One pass over the body, elements turned into events as they are read; when that fails,
    // `serde_json::Value` gives the verdict (see `view.rs`), with a fresh collector.
    let not_json = |e: serde_json::Error| match handshake {
        Some(Handshake::Deletion) => Ok(Delivery::Deletion {
            subscription_id: None,
        }),
        _ => Err(DeliveryError::Malformed(format!("body is not JSON: {e}"))),
    };
    let mut collector = Collector::new(handshake, cloud);
    collector.expect_bytes(body.len());
    match read_slice(body, &mut collector) {
        Ok(shape) => finish(shape, collector, cloudevents_media, handshake),
        Err(_) => match serde_json::from_slice::<Value>(body) {
            Ok(value) => {
                let mut collector = Collector::new(handshake, cloud);
                match read_value(&value, &mut collector) {
                    Ok(shape) => finish(shape, collector, cloudevents_media, handshake),
                    Err(e) => not_json(e),
                }
            }
            Err(e) => not_json(e),
        },
    }
}

/// The delivery of a body read into `collector`.
fn finish<'a>(
    shape: Shape<'a>,
    mut collector: Collector<'a>,
    cloudevents_media: bool,
    handshake: Option<Handshake>,
) -> Result<Delivery, DeliveryError> {
    match shape {
        Shape::Array => {
            let format = collector.array_format(cloudevents_media);
            collector.finish(format)
        }
        Shape::Object(view) => {
            let format = match view.schema() {
                Some(Schema::CloudEvents) => Format::CloudEvents,
                _ => Format::EventGrid,
            };
            collector.push(Item::Object(view));
            collector.finish(format)
        }
        Shape::Other(_) if handshake == Some(Handshake::Deletion) => Ok(Delivery::Deletion {
            subscription_id: None,
        }),
        Shape::Other(kind) => Err(DeliveryError::Malformed(format!(
            "body is a JSON {kind}, expected an array or an object"
        ))),
    }
}

/// The format of a JSON array from the schemas of its elements: a CloudEvents batch when most
/// classifiable elements are CloudEvents (or, with none classifiable, when the content type said
/// CloudEvents), else Event Grid schema.
fn format_of(cloudevents: usize, eventgrid: usize, cloudevents_media: bool) -> Format {
    let batch = if cloudevents + eventgrid == 0 {
        cloudevents_media
    } else {
        cloudevents >= eventgrid
    };
    if batch {
        Format::CloudEventsBatch
    } else {
        Format::EventGrid
    }
}

/// The schema of an element, when it is an object that uses one.
fn schema_of(item: &Item<'_>) -> Option<Schema> {
    match item {
        Item::Object(view) => view.schema(),
        Item::Other(_) => None,
    }
}

/// The event type of an element, whichever schema it uses.
fn type_of<'v>(item: &'v Item<'_>) -> Option<&'v str> {
    match item {
        Item::Object(view) => view.type_text(view.schema()?),
        Item::Other(_) => None,
    }
}

/// `data` of an element as an object, if it is one (or a JSON-encoded one).
fn data_of<'v, 'a>(item: &'v Item<'a>) -> Result<Option<Cow<'v, DataView<'a>>>, String> {
    match item {
        Item::Object(view) => data_object(view.data.as_ref()),
        Item::Other(kind) => Err(format!("the event is a JSON {kind}, expected an object")),
    }
}

/// A validation handshake from its event.
fn validation(item: Option<&Item<'_>>) -> Result<Delivery, DeliveryError> {
    let item = item.ok_or_else(|| DeliveryError::Malformed("validation delivery without an event".into()))?;
    let data = data_of(item)
        .map_err(|e| DeliveryError::Malformed(format!("validation event: {e}")))?
        .unwrap_or_default();
    let code = text(data.validation_code.as_ref())
        .ok_or_else(|| DeliveryError::Malformed("validation event without data.validationCode".into()))?;
    Ok(Delivery::Validation {
        code: code.to_string(),
        validation_url: text(data.validation_url.as_ref()).map(str::to_string),
    })
}

/// A deletion notice from its event (the subscription id is best effort).
fn deletion(item: Option<&Item<'_>>) -> Delivery {
    let subscription_id = item
        .and_then(|i| data_of(i).ok().flatten())
        .and_then(|d| text(d.event_subscription_id.as_ref()).map(str::to_string));
    Delivery::Deletion { subscription_id }
}

/// Turns the elements of a JSON array into a handshake or events, its format from the elements'
/// schemas (Functions mode).
pub(crate) fn deliver_array(items: Vec<Item<'_>>, cloud: Cloud) -> Result<Delivery, DeliveryError> {
    let mut collector = Collector::new(None, cloud);
    for item in items {
        collector.push(item);
    }
    let format = collector.array_format(false);
    collector.finish(format)
}

/// Turns the elements of a delivery into a handshake or events (Functions mode, binary mode).
pub(crate) fn deliver(
    items: Vec<Item<'_>>,
    format: Format,
    handshake: Option<Handshake>,
    cloud: Cloud,
) -> Result<Delivery, DeliveryError> {
    let mut collector = Collector::new(handshake, cloud);
    for item in items {
        collector.push(item);
    }
    collector.finish(format)
}

/// Takes the elements of a delivery one at a time, as they are read: each becomes an event (or a
/// rejection) at once, so a batch is never held as views. Only what a handshake needs is kept:
/// the first validation and deletion events and, when the `aeg-event-type` header announces a
/// handshake, the first element (no element is turned into an event then).
pub(crate) struct Collector<'a> {
    cloud: Cloud,
    handshake: Option<Handshake>,
    shared: Shared,
    /// Elements seen so far.
    total: usize,
    /// Elements using the CloudEvents / Event Grid schema (for [`format_of`]).
    cloudevents: usize,
    eventgrid: usize,
    /// The first element, kept only under a handshake header.
    first: Option<Item<'a>>,
    /// The first subscription validation event.
    validation: Option<Item<'a>>,
    /// The first subscription deletion event.
    deletion: Option<Item<'a>>,
    events: Vec<Event>,
    rejected: Vec<Rejected>,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(handshake: Option<Handshake>, cloud: Cloud) -> Collector<'a> {
        Collector {
            cloud,
            handshake,
            shared: Shared::default(),
            total: 0,
            cloudevents: 0,
            eventgrid: 0,
            first: None,
            validation: None,
            deletion: None,
            events: Vec::new(),
            rejected: Vec::new(),
        }
    }

    /// Room for the events a body of `bytes` may hold (a Key Vault event takes about 600 bytes
    /// of JSON; fewer than 512 is rare), so that a batch's list is not regrown as it is read.
    fn expect_bytes(&mut self, bytes: usize) {
        self.events.reserve((bytes / 512).min(8192));
    }

    /// The format of the array read so far.
    fn array_format(&self, cloudevents_media: bool) -> Format {
        format_of(self.cloudevents, self.eventgrid, cloudevents_media)
    }

    /// The handshake (a handshake event anywhere wins, then the header), else the events.
    fn finish(self, format: Format) -> Result<Delivery, DeliveryError> {
        if self.validation.is_some() || self.handshake == Some(Handshake::Validation) {
            return validation(self.validation.as_ref().or(self.first.as_ref()));
        }
        if self.deletion.is_some() || self.handshake == Some(Handshake::Deletion) {
            return Ok(deletion(self.deletion.as_ref().or(self.first.as_ref())));
        }
        if self.events.is_empty()
            && let Some(first) = self.rejected.first()
        {
            return Err(DeliveryError::Malformed(format!(
                "no usable event among {}; element {}: {}",
                self.total, first.index, first.reason
            )));
        }
        Ok(Delivery::Events(Events {
            format,
            events: self.events,
            rejected: self.rejected,
        }))
    }
}

impl<'a> Items<'a> for Collector<'a> {
    fn push(&mut self, item: Item<'a>) {
        let index = self.total;
        self.total += 1;
        match schema_of(&item) {
            Some(Schema::CloudEvents) => self.cloudevents += 1,
            Some(Schema::EventGrid) => self.eventgrid += 1,
            None => {}
        }
        if self.handshake.is_some() && self.first.is_none() {
            self.first = Some(item.clone());
        }
        let event_type = type_of(&item);
        let is = |want: &str| event_type.is_some_and(|t| t.eq_ignore_ascii_case(want));
        if is(VALIDATION_EVENT) {
            self.validation.get_or_insert(item);
            return;
        }
        if is(DELETION_EVENT) {
            self.deletion.get_or_insert(item);
            return;
        }
        // Under a handshake (announced, or seen), events are not delivered.
        if self.handshake.is_some() || self.validation.is_some() || self.deletion.is_some() {
            return;
        }
        match event(&item, self.cloud, &mut self.shared) {
            Ok(e) => self.events.push(e),
            Err((id, reason)) => self.rejected.push(Rejected { index, id, reason }),
        }
    }
}

/// One element → an event, or its id (if any) and the reason it is unusable.
fn event(item: &Item<'_>, cloud: Cloud, shared: &mut Shared) -> Result<Event, (Option<String>, String)> {
    let view = match item {
        Item::Object(view) => view,
        Item::Other(kind) => {
            return Err((None, format!("element is a JSON {kind}, expected an object")));
        }
    };
    let hint = |view: &EventView<'_>| text(view.id.as_ref()).map(|i| excerpt(i, 128));
    let hint = view.schema().is_none().then(|| hint(view)).flatten();
    let mut env = envelope(view).map_err(|reason| (hint, reason))?;
    let Some(id) = env.id.take() else {
        return Err((None, "missing id".into()));
    };
    let Some(event_type) = env.event_type.take() else {
        let key = match env.schema {
            Schema::EventGrid => "eventType",
            Schema::CloudEvents => "type",
        };
        return Err((Some(excerpt(&id, 128)), format!("missing {key}")));
    };
    match classify(&event_type) {
        Some((kind, family)) => to_key_vault_event(
            env,
            &cut(&id, 256),
            sent_type(&event_type, kind, family),
            kind,
            family,
            cloud,
            shared,
        )
        .map(Event::KeyVault)
        .map_err(|reason| (Some(excerpt(&id, 128)), format!("{event_type}: {reason}"))),
        None => Ok(Event::Other {
            id: excerpt(&id, 256),
            event_type: excerpt(&event_type, 256),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{ObjectKind, ObjectName, VaultId};
    use crate::eventgrid::KeyVaultEventKind;
    use http::HeaderValue;
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ct(v: &str) -> HeaderMap {
        headers(&[("content-type", v)])
    }

    fn kv_event(id: &str, name: &str) -> Value {
        json!({
            "id": id,
            "topic": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/sample-kv",
            "subject": name,
            "eventType": "Microsoft.KeyVault.SecretNewVersionCreated",
            "eventTime": "2024-01-01T00:00:00Z",
            "data": {
                "Id": format!("https://sample-kv.vault.azure.net/secrets/{name}/v1"),
                "VaultName": "sample-kv", "ObjectType": "Secret", "ObjectName": name,
                "Version": "v1", "NBF": null, "EXP": null
            },
            "dataVersion": "1", "metadataVersion": "1"
        })
    }

    fn cloud_event(id: &str, name: &str) -> Value {
        json!({
            "specversion": "1.0", "id": id,
            "source": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/sample-kv",
            "subject": name, "type": "Microsoft.KeyVault.SecretNewVersionCreated",
            "time": "2024-01-01T00:00:00Z",
            "data": {"Id": format!("https://sample-kv.vault.azure.net/secrets/{name}/v1"), "VaultName": "sample-kv",
                     "ObjectName": name, "Version": "v1"}
        })
    }

    fn parse(body: &Value, h: &HeaderMap) -> Result<Delivery, DeliveryError> {
        parse_delivery(body.to_string().as_bytes(), h, Cloud::Public)
    }

    fn events(d: Result<Delivery, DeliveryError>) -> Events {
        match d {
            Ok(Delivery::Events(e)) => e,
            other => panic!("not events: {other:?}"),
        }
    }

    fn names(e: &Events) -> Vec<String> {
        e.key_vault()
            .map(|k| k.object.as_ref().unwrap().name.as_str().to_string())
            .collect()
    }

    #[test]
    fn accepted_content_types_ignore_case_and_parameters() {
        let body = json!([kv_event("1", "a")]);
        for v in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
            "  application/json  ",
            "application/cloudevents+json; charset=utf-8",
            "application/cloudevents-batch+json",
            "text/plain",
            "text/plain; charset=us-ascii",
            "",
        ] {
            let e = events(parse(&body, &ct(v)));
            assert_eq!(names(&e), ["a"], "{v}");
        }
        assert_eq!(names(&events(parse(&body, &HeaderMap::new()))), ["a"]);
    }

    #[test]
    fn other_content_types_are_unsupported() {
        let body = json!([kv_event("1", "a")]);
        for v in [
            "application/xml",
            "multipart/form-data; boundary=x",
            "text/html",
            "application/octet-stream",
        ] {
            assert!(
                matches!(
                    parse(&body, &ct(v)),
                    Err(DeliveryError::UnsupportedContentType(_))
                ),
                "{v}"
            );
        }
        let long = format!("application/{}", "x".repeat(5000));
        let Err(DeliveryError::UnsupportedContentType(msg)) = parse(&body, &ct(&long)) else {
            panic!("expected unsupported");
        };
        assert!(msg.chars().count() <= 101);
        let mut h = HeaderMap::new();
        h.insert(
            "content-type",
            HeaderValue::from_bytes(b"application/\xffjson").unwrap(),
        );
        assert!(matches!(
            parse(&body, &h),
            Err(DeliveryError::UnsupportedContentType(_))
        ));
    }

    #[test]
    fn a_single_event_grid_object_is_tolerated() {
        let e = events(parse(&kv_event("1", "a"), &ct("application/json")));
        assert_eq!(e.format, Format::EventGrid);
        assert_eq!(names(&e), ["a"]);
    }

    #[test]
    fn cloudevents_structured_single_and_batch() {
        let e = events(parse(
            &cloud_event("1", "a"),
            &ct("application/cloudevents+json; charset=utf-8"),
        ));
        assert_eq!(e.format, Format::CloudEvents);
        assert_eq!(names(&e), ["a"]);
        // Structured without the CloudEvents content type is detected by its keys.
        let e = events(parse(&cloud_event("1", "a"), &ct("application/json")));
        assert_eq!(e.format, Format::CloudEvents);

        let batch = json!([cloud_event("1", "a"), cloud_event("2", "b")]);
        for h in [
            ct("application/cloudevents-batch+json"),
            ct("application/json"),
            HeaderMap::new(),
        ] {
            let e = events(parse(&batch, &h));
            assert_eq!(e.format, Format::CloudEventsBatch);
            assert_eq!(names(&e), ["a", "b"]);
        }
        let e = events(parse(&json!([]), &ct("application/cloudevents-batch+json")));
        assert_eq!(e.format, Format::CloudEventsBatch);
        // An Event Grid array is Event Grid whatever the content type.
        let e = events(parse(
            &json!([kv_event("1", "a")]),
            &ct("application/cloudevents-batch+json"),
        ));
        assert_eq!(e.format, Format::EventGrid);
    }

    #[test]
    fn elements_are_classified_one_by_one() {
        let e = events(parse(
            &json!([kv_event("1", "a"), cloud_event("2", "b")]),
            &HeaderMap::new(),
        ));
        assert_eq!(names(&e), ["a", "b"]);
        assert!(e.rejected.is_empty());
    }

    #[test]
    fn binary_mode_reads_ce_headers_and_the_body_as_data() {
        let h = headers(&[
            ("content-type", "application/json"),
            ("ce-specversion", "1.0"),
            ("ce-id", "ev-1"),
            ("ce-type", "Microsoft.KeyVault.CertificateNearExpiry"),
            (
                "ce-source",
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/sample-kv",
            ),
            ("ce-subject", "api-cert"),
            ("ce-time", "2024-01-01T00:00:00%2E5Z"),
        ]);
        let body = json!({"Id": "https://sample-kv.vault.azure.net/certificates/api-cert/v2", "VaultName": "sample-kv",
                          "ObjectName": "api-cert", "Version": "v2", "NBF": 1, "EXP": "2"});
        let e = events(parse(&body, &h));
        assert_eq!(e.format, Format::CloudEventsBinary);
        let kv = e.key_vault().next().unwrap();
        assert_eq!(kv.id(), "ev-1");
        assert_eq!(kv.kind, KeyVaultEventKind::NearExpiry);
        assert_eq!(kv.object.as_ref().unwrap().kind, ObjectKind::Certificate);
        assert_eq!(kv.time(), Some("2024-01-01T00:00:00.5Z"));
        assert_eq!(kv.subject(), Some("api-cert"));
        assert_eq!((kv.nbf, kv.exp), (Some(1), Some(2)));

        // Without a content type too; the data may be a JSON string.
        let mut h2 = h.clone();
        h2.remove("content-type");
        let e = events(parse_delivery(
            json!(body.to_string()).to_string().as_bytes(),
            &h2,
            Cloud::Public,
        ));
        assert_eq!(names(&e), ["api-cert"]);

        // An empty body still names the object through ce-subject and the source ARM id.
        let e = events(parse_delivery(b"", &h2, Cloud::China));
        assert_eq!(
            e.key_vault().next().unwrap().vault,
            VaultId::from_url("sample-kv.vault.azure.cn").unwrap()
        );
        assert_eq!(names(&e), ["api-cert"]);

        // A non-JSON body cannot be used for a Key Vault event.
        let mut h3 = h2.clone();
        h3.remove("ce-subject");
        h3.remove("ce-source");
        let err = parse_delivery(b"<xml/>", &h3, Cloud::Public).unwrap_err();
        assert!(
            matches!(err, DeliveryError::Malformed(ref m) if m.contains("not JSON")),
            "{err}"
        );

        // A missing ce-type is a rejected element, so the delivery is malformed.
        let mut h4 = h2.clone();
        h4.remove("ce-type");
        let err = parse(&body, &h4).unwrap_err();
        assert!(
            matches!(err, DeliveryError::Malformed(ref m) if m.contains("missing type")),
            "{err}"
        );
    }

    #[test]
    fn cloudevents_content_type_wins_over_ce_headers() {
        let h = headers(&[
            ("content-type", "application/cloudevents+json"),
            ("ce-specversion", "1.0"),
            ("ce-id", "other"),
            ("ce-type", "Other.Type"),
        ]);
        let e = events(parse(&cloud_event("1", "a"), &h));
        assert_eq!(e.format, Format::CloudEvents);
        assert_eq!(names(&e), ["a"]);
    }

    #[test]
    fn validation_by_header_or_event_type_with_object_or_string_data() {
        let code = "512d38b6-c7b8-40c8-89fe-f46f9e9622b6";
        let want = Delivery::Validation {
            code: code.into(),
            validation_url: Some("https://rp-eastus2.eventgrid.azure.net:553/validate".into()),
        };
        let data = json!({"validationCode": code, "validationUrl": "https://rp-eastus2.eventgrid.azure.net:553/validate"});
        let ev = |data: Value, t: &str| json!([{"id": "1", "topic": "/subscriptions/x", "subject": "", "eventType": t, "data": data}]);
        let vh = headers(&[("aeg-event-type", "SubscriptionValidation")]);
        let t = "Microsoft.EventGrid.SubscriptionValidationEvent";
        assert_eq!(parse(&ev(data.clone(), t), &vh).unwrap(), want);
        assert_eq!(parse(&ev(data.clone(), t), &HeaderMap::new()).unwrap(), want);
        assert_eq!(
            parse(&ev(data.clone(), &t.to_ascii_lowercase()), &HeaderMap::new()).unwrap(),
            want
        );
        assert_eq!(
            parse(&ev(json!(data.to_string()), t), &HeaderMap::new()).unwrap(),
            want
        );
        // Single object; header only (the event type is not needed); CloudEvents; keys in any case.
        assert_eq!(parse(&ev(data.clone(), t)[0], &HeaderMap::new()).unwrap(), want);
        assert_eq!(parse(&json!([{"data": data.clone()}]), &vh).unwrap(), want);
        let ce = json!({"specversion": "1.0", "id": "1", "source": "x", "type": t, "data": data.clone()});
        assert_eq!(parse(&ce, &HeaderMap::new()).unwrap(), want);
        let upper = json!({"ValidationCode": format!(" {code} "), "VALIDATIONURL": "https://rp-eastus2.eventgrid.azure.net:553/validate"});
        assert_eq!(parse(&ev(upper, t), &HeaderMap::new()).unwrap(), want);
        assert_eq!(
            parse(&ev(json!({"validationCode": code}), t), &vh).unwrap(),
            Delivery::Validation {
                code: code.into(),
                validation_url: None
            }
        );
        // A validation event among others is still the handshake.
        let mixed = json!([kv_event("1", "a"), ev(data.clone(), t)[0].clone()]);
        assert_eq!(parse(&mixed, &HeaderMap::new()).unwrap(), want);
    }

    #[test]
    fn validation_without_a_code_is_malformed() {
        let t = "Microsoft.EventGrid.SubscriptionValidationEvent";
        let vh = headers(&[("aeg-event-type", "subscriptionvalidation")]);
        for data in [
            json!({}),
            json!({"validationCode": ""}),
            json!({"validationCode": "   "}),
            json!({"validationCode": 5}),
            json!({"validationUrl": "https://x"}),
            json!(null),
            json!("not json"),
            json!([1]),
        ] {
            let body = json!([{"id": "1", "eventType": t, "data": data}]);
            for h in [HeaderMap::new(), vh.clone()] {
                assert!(
                    matches!(parse(&body, &h), Err(DeliveryError::Malformed(_))),
                    "{body}"
                );
            }
        }
        for body in [json!([]), json!([1]), json!(["x"])] {
            assert!(
                matches!(parse(&body, &vh), Err(DeliveryError::Malformed(_))),
                "{body}"
            );
        }
        assert!(matches!(
            parse_delivery(b"", &vh, Cloud::Public),
            Err(DeliveryError::Malformed(_))
        ));
    }

    #[test]
    fn deletion_by_header_or_event_type() {
        let sub = "/subscriptions/id/resourceGroups/rg/providers/Microsoft.EventGrid/eventSubscriptions/s1";
        let body = json!([{"id": "1", "eventType": "Microsoft.EventGrid.SubscriptionDeletedEvent", "data": {"eventSubscriptionId": sub}}]);
        let want = Delivery::Deletion {
            subscription_id: Some(sub.into()),
        };
        assert_eq!(parse(&body, &HeaderMap::new()).unwrap(), want);
        for v in ["SubscriptionDeletion", "unsubscribe"] {
            let h = headers(&[("aeg-event-type", v)]);
            assert_eq!(parse(&body, &h).unwrap(), want);
            assert_eq!(
                parse(&json!([{"data": "{\"EventSubscriptionId\": \"x\"}"}]), &h).unwrap(),
                Delivery::Deletion {
                    subscription_id: Some("x".into())
                }
            );
            for raw in [&b""[..], b"not json", b"[]", b"42", b"[{\"data\": [1]}]"] {
                assert_eq!(
                    parse_delivery(raw, &h, Cloud::Public).unwrap(),
                    Delivery::Deletion {
                        subscription_id: None
                    }
                );
            }
        }
    }

    #[test]
    fn elements_read_one_by_one_keep_the_batch_verdict() {
        let t = "Microsoft.EventGrid.SubscriptionValidationEvent";
        let validation = json!({"id": "v", "eventType": t, "data": {"validationCode": "c"}});
        let deletion = json!({"id": "d", "eventType": "Microsoft.EventGrid.SubscriptionDeletedEvent",
            "data": {"eventSubscriptionId": "s"}});
        let want = Delivery::Validation {
            code: "c".into(),
            validation_url: None,
        };
        // A validation event wins wherever it is, over events and over an earlier deletion event.
        let body = json!([
            kv_event("1", "a"),
            deletion.clone(),
            kv_event("2", "b"),
            validation
        ]);
        assert_eq!(parse(&body, &HeaderMap::new()).unwrap(), want);
        let body = json!([kv_event("1", "a"), 7, deletion]);
        assert_eq!(
            parse(&body, &HeaderMap::new()).unwrap(),
            Delivery::Deletion {
                subscription_id: Some("s".into())
            }
        );
        // Invalid UTF-8 inside a string of a later element: the whole body is refused.
        let mut raw = serde_json::to_vec(&json!([kv_event("1", "a"), kv_event("2", "b")])).unwrap();
        let at = raw.windows(3).rposition(|w| w == b"\"b\"").unwrap();
        raw[at + 1] = 0xff;
        assert!(matches!(
            parse_delivery(&raw, &HeaderMap::new(), Cloud::Public),
            Err(DeliveryError::Malformed(m)) if m.starts_with("body is not JSON")
        ));
        // The one pass gives up at the raw-value quirk in element 2; the fallback starts afresh,
        // so element positions and events are counted once.
        let quirk = format!(
            r#"[{}, 5, {{"$serde_json::private::RawValue": "{{\"a\": 1}}"}}, {}]"#,
            kv_event("1", "a"),
            kv_event("2", "b")
        );
        let e = events(parse_delivery(quirk.as_bytes(), &HeaderMap::new(), Cloud::Public));
        assert_eq!(names(&e), ["a", "b"]);
        assert_eq!(e.rejected.iter().map(|r| r.index).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn events_of_one_vault_share_their_source() {
        let e = events(parse(
            &json!([kv_event("1", "a"), kv_event("2", "b")]),
            &HeaderMap::new(),
        ));
        let sources: Vec<_> = e.key_vault().map(|kv| kv.source.clone().unwrap()).collect();
        assert_eq!(
            &*sources[0],
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/sample-kv"
        );
        assert!(std::sync::Arc::ptr_eq(&sources[0], &sources[1]));
    }

    #[test]
    fn type_names_are_the_documented_ones_whatever_the_casing() {
        for (sent, name) in [
            (
                "microsoft.keyvault.secretnewversioncreated",
                "Microsoft.KeyVault.SecretNewVersionCreated",
            ),
            ("MICROSOFT.KEYVAULT.KEYEXPIRED", "Microsoft.KeyVault.KeyExpired"),
            (
                "Microsoft.KeyVault.CertificateNearExpiry",
                "Microsoft.KeyVault.CertificateNearExpiry",
            ),
            (
                "microsoft.keyvault.vaultaccesspolicychanged",
                "Microsoft.KeyVault.VaultAccessPolicyChanged",
            ),
        ] {
            let mut ev = kv_event("1", "a");
            ev["eventType"] = json!(sent);
            let e = events(parse(&json!([ev]), &HeaderMap::new()));
            let kv = e.key_vault().next().unwrap();
            assert_eq!((&*kv.event_type, kv.type_name()), (sent, name));
        }
    }

    #[test]
    fn notification_and_unknown_aeg_values_parse_events() {
        let body = json!([kv_event("1", "a")]);
        for v in ["Notification", "Something"] {
            let e = events(parse(&body, &headers(&[("aeg-event-type", v)])));
            assert_eq!(names(&e), ["a"]);
        }
    }

    #[test]
    fn mixed_batch_keeps_valid_events_and_lists_rejects() {
        let body = json!([
            kv_event("1", "a"),
            {"id": "2", "eventType": "Microsoft.KeyVault.SecretNewVersionCreated", "data": {"ObjectName": "b"}},
            42,
            {"id": "4", "eventType": "Microsoft.Storage.BlobCreated", "data": {"url": "https://x"}},
            {"foo": "bar"},
            {"eventType": "Microsoft.KeyVault.SecretNewVersionCreated"},
            {"specversion": "1.0", "id": "7"},
            kv_event("8", "c"),
        ]);
        let e = events(parse(&body, &HeaderMap::new()));
        assert_eq!(names(&e), ["a", "c"]);
        assert_eq!(
            e.events[1],
            Event::Other {
                id: "4".into(),
                event_type: "Microsoft.Storage.BlobCreated".into()
            }
        );
        let summary: Vec<(usize, Option<&str>)> =
            e.rejected.iter().map(|r| (r.index, r.id.as_deref())).collect();
        assert_eq!(
            summary,
            [(1, Some("2")), (2, None), (4, None), (5, None), (6, Some("7"))]
        );
        assert!(
            e.rejected[0]
                .reason
                .starts_with("Microsoft.KeyVault.SecretNewVersionCreated: no usable vault")
        );
        assert_eq!(
            e.rejected[1].reason,
            "element is a JSON number, expected an object"
        );
        assert!(e.rejected[2].reason.starts_with("neither"));
        assert_eq!(e.rejected[3].reason, "missing id");
        assert_eq!(e.rejected[4].reason, "missing type");
        assert_eq!(e.changes().len(), 2);
    }

    #[test]
    fn a_batch_with_only_invalid_elements_is_malformed() {
        let body = json!([
            {"id": "2", "eventType": "Microsoft.KeyVault.SecretNewVersionCreated", "data": {"ObjectName": "b"}},
            "x",
        ]);
        let err = parse(&body, &HeaderMap::new()).unwrap_err();
        let DeliveryError::Malformed(msg) = err else {
            panic!()
        };
        assert!(msg.starts_with("no usable event among 2; element 0: "), "{msg}");
    }

    #[test]
    fn key_vault_data_may_be_a_json_encoded_string() {
        let mut ev = kv_event("1", "a");
        ev["data"] = json!(ev["data"].to_string());
        let e = events(parse(&json!([ev.clone()]), &HeaderMap::new()));
        assert_eq!(names(&e), ["a"]);
        // The same event as with `data` as an object.
        assert_eq!(e, events(parse(&json!([kv_event("1", "a")]), &HeaderMap::new())));
    }

    #[test]
    fn a_batch_of_other_events_only_is_fine() {
        let e = events(parse(
            &json!([{"id": "1", "eventType": "Microsoft.Storage.BlobCreated", "data": {}}]),
            &HeaderMap::new(),
        ));
        assert_eq!(e.events.len(), 1);
        assert!(e.changes().is_empty());
    }

    #[test]
    fn empty_array_is_an_empty_delivery() {
        let e = events(parse(&json!([]), &ct("application/json")));
        assert_eq!(
            e,
            Events {
                format: Format::EventGrid,
                events: vec![],
                rejected: vec![]
            }
        );
    }

    #[test]
    fn bodies_that_are_not_events_are_malformed() {
        for raw in [
            &b""[..],
            b"   ",
            b"nul",
            b"{",
            b"42",
            b"\"x\"",
            b"null",
            b"true",
            b"[1,]",
            b"\xff\xfe",
        ] {
            assert!(
                matches!(
                    parse_delivery(raw, &HeaderMap::new(), Cloud::Public),
                    Err(DeliveryError::Malformed(_))
                ),
                "{raw:?}"
            );
        }
        assert!(matches!(
            parse(&json!({"a": 1}), &HeaderMap::new()),
            Err(DeliveryError::Malformed(_))
        ));
    }

    #[test]
    fn deep_nesting_is_malformed_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(matches!(
            parse_delivery(deep.as_bytes(), &HeaderMap::new(), Cloud::Public),
            Err(DeliveryError::Malformed(_))
        ));
        let deep_obj = "{\"a\":".repeat(100_000);
        assert!(matches!(
            parse_delivery(deep_obj.as_bytes(), &HeaderMap::new(), Cloud::Public),
            Err(DeliveryError::Malformed(_))
        ));
        // Deep data inside a JSON string is bounded too.
        let inner = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let body =
            json!([{"id": "1", "eventType": "Microsoft.KeyVault.SecretNewVersionCreated", "data": inner}]);
        assert!(matches!(
            parse(&body, &HeaderMap::new()),
            Err(DeliveryError::Malformed(_))
        ));
    }

    #[test]
    fn reasons_quote_only_short_excerpts() {
        let huge = "x".repeat(100_000);
        let body = json!([
            {"id": huge, "eventType": "Microsoft.KeyVault.SecretNewVersionCreated", "data": {"VaultName": huge, "ObjectName": huge}},
            {"id": "2", "eventType": "Microsoft.KeyVault.SecretNewVersionCreated", "data": huge},
            {"id": "3", "eventType": huge},
            {huge.clone(): 1},
        ]);
        let bad: Vec<Value> = body
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 2)
            .map(|(_, v)| v.clone())
            .collect();
        let DeliveryError::Malformed(msg) = parse(&Value::Array(bad), &HeaderMap::new()).unwrap_err() else {
            panic!()
        };
        assert!(msg.chars().count() < 300, "{}", msg.len());
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        let mut body2 = body.as_array().unwrap().clone();
        body2.push(kv_event("ok", "a"));
        let e = events(parse(&Value::Array(body2), &h));
        for r in &e.rejected {
            assert!(r.reason.chars().count() <= 250, "{}", r.reason.len());
            assert!(r.id.as_ref().is_none_or(|i| i.chars().count() <= 129));
        }
        let Event::Other { id, event_type } = &e.events[0] else {
            panic!()
        };
        assert_eq!((id.as_str(), event_type.chars().count()), ("3", 257));
    }

    #[test]
    fn events_map_to_changes() {
        let e = events(parse(&json!([kv_event("1", "DB-Password")]), &HeaderMap::new()));
        let change = e.changes().pop().unwrap();
        assert_eq!(change.object.name, ObjectName::new("db-password"));
        assert_eq!(change.version.as_deref(), Some("v1"));
        assert_eq!(e.events[0].id(), "1");
        assert_eq!(
            e.events[0].event_type(),
            "Microsoft.KeyVault.SecretNewVersionCreated"
        );
    }

    #[test]
    fn format_labels() {
        let labels: Vec<&str> = [
            Format::EventGrid,
            Format::CloudEvents,
            Format::CloudEventsBatch,
            Format::CloudEventsBinary,
        ]
        .into_iter()
        .map(Format::as_str)
        .collect();
        assert_eq!(
            labels,
            [
                "eventgrid",
                "cloudevents",
                "cloudevents_batch",
                "cloudevents_binary"
            ]
        );
    }
}
