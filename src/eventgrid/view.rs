//! Borrowed views of a delivery's JSON: per element, only the fields the parser reads.
//!
//! A body is read in one pass by serde_json's own deserializer, visiting every value the way
//! `serde_json::Value` does (`deserialize_any` throughout, even for values that are not kept), so a
//! body is accepted or refused exactly as `serde_json::from_slice::<Value>` would, under the same
//! recursion limit. Unescaped strings are borrowed from the body; other values are reduced to what
//! the parser reads. Lookups keep the semantics the parser had on `serde_json::Map` (a `BTreeMap`):
//! a later duplicate key replaces an earlier one, the exact key wins, else the smallest key (in byte
//! order) that matches ignoring ASCII case.
//!
//! The same visitors also run over a `&serde_json::Value` (Functions requests, binary mode, and the
//! fallback when the one-pass read fails), so both paths share every rule. One quirk of
//! `serde_json::Value` is not reproduced in the one pass: an object whose first key is serde_json's
//! raw-value token is re-parsed from its string value. The one pass refuses such bodies, and the
//! caller falls back to `Value`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

/// The first key serde_json's `Value` treats as a raw value (`serde_json::raw::TOKEN`, private).
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// The `data` fields of a Key Vault event, in [`DataView::key_vault`] order. Matched ignoring ASCII
/// case and surrounding spaces; the exact name wins.
pub(crate) const KEY_VAULT_FIELDS: [&str; 7] = [
    "Id",
    "VaultName",
    "ObjectType",
    "ObjectName",
    "Version",
    "NBF",
    "EXP",
];

/// The envelope keys an element view keeps, in [`EventView`] field order.
const ENVELOPE_KEYS: [&str; 10] = [
    "id",
    "eventType",
    "type",
    "topic",
    "source",
    "subject",
    "eventTime",
    "time",
    "data",
    "specversion",
];

/// The handshake keys of `data`, in [`DataView`] field order.
const HANDSHAKE_KEYS: [&str; 3] = ["validationCode", "validationUrl", "eventSubscriptionId"];

/// A JSON value reduced to what the parser reads: scalars are kept, arrays and objects only by kind.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Scalar<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool,
    /// A number, as `serde_json::Value` holds it.
    Number(Number),
    /// A string, borrowed when it had no escapes.
    Str(Cow<'a, str>),
    /// An array.
    Array,
    /// An object.
    Object,
}

impl Scalar<'_> {
    /// The JSON kind, for messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Bool => "boolean",
            Scalar::Number(_) => "number",
            Scalar::Str(_) => "string",
            Scalar::Array => "array",
            Scalar::Object => "object",
        }
    }

    /// The string, trimmed; `None` when not a string or empty after trimming.
    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            Scalar::Str(s) => Some(s.trim()).filter(|t| !t.is_empty()),
            _ => None,
        }
    }

    fn into_owned(self) -> Scalar<'static> {
        match self {
            Scalar::Null => Scalar::Null,
            Scalar::Bool => Scalar::Bool,
            Scalar::Number(n) => Scalar::Number(n),
            Scalar::Str(s) => Scalar::Str(Cow::Owned(s.into_owned())),
            Scalar::Array => Scalar::Array,
            Scalar::Object => Scalar::Object,
        }
    }
}

/// A trimmed non-empty string value.
pub(crate) fn text<'v>(value: Option<&'v Scalar<'_>>) -> Option<&'v str> {
    value?.text()
}

/// `data`: an object as a [`DataView`], anything else as a [`Scalar`].
#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per element, read in place; boxing would add an allocation per event"
)]
pub(crate) enum Data<'a> {
    /// Not an object (a JSON-encoded string, `null`, …).
    Scalar(Scalar<'a>),
    /// An object.
    Object(DataView<'a>),
}

impl Data<'_> {
    /// Decodes a JSON text (a `data` string): one pass, else through `serde_json::Value`.
    pub(crate) fn decode(json: &str) -> Result<Data<'static>, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(json);
        let fast = DataSeed(Mode::Text)
            .deserialize(&mut de)
            .and_then(|d| de.end().map(|()| d));
        match fast {
            Ok(d) => Ok(d.into_owned()),
            Err(_) => {
                let value = serde_json::from_str::<Value>(json)?;
                Ok(DataSeed(Mode::Value).deserialize(&value)?.into_owned())
            }
        }
    }

    /// The view of `data` held in a `serde_json::Value`.
    #[cfg(test)]
    pub(crate) fn from_value(value: &Value) -> Result<Data<'_>, serde_json::Error> {
        DataSeed(Mode::Value).deserialize(value)
    }

    fn into_owned(self) -> Data<'static> {
        match self {
            Data::Scalar(s) => Data::Scalar(s.into_owned()),
            Data::Object(v) => Data::Object(v.into_owned()),
        }
    }
}

/// The fields of a `data` object the parser reads.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct DataView<'a> {
    /// The Key Vault fields, in [`KEY_VAULT_FIELDS`] order.
    pub key_vault: [Option<Scalar<'a>>; 7],
    /// `validationCode`.
    pub validation_code: Option<Scalar<'a>>,
    /// `validationUrl`.
    pub validation_url: Option<Scalar<'a>>,
    /// `eventSubscriptionId`.
    pub event_subscription_id: Option<Scalar<'a>>,
}

impl DataView<'_> {
    /// The view of a `data` object held in a `serde_json::Map`.
    #[cfg(test)]
    pub(crate) fn from_map(map: &serde_json::Map<String, Value>) -> Result<DataView<'_>, serde_json::Error> {
        match DataSeed(Mode::Value).deserialize(map)? {
            Data::Object(view) => Ok(view),
            Data::Scalar(_) => Ok(DataView::default()),
        }
    }

    /// The view with every string owned.
    pub(crate) fn into_owned(self) -> DataView<'static> {
        let own = |s: Option<Scalar<'_>>| s.map(Scalar::into_owned);
        DataView {
            key_vault: self.key_vault.map(own),
            validation_code: own(self.validation_code),
            validation_url: own(self.validation_url),
            event_subscription_id: own(self.event_subscription_id),
        }
    }
}

/// An element of a delivery.
#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "almost every element is an object; boxing would add an allocation per event"
)]
pub(crate) enum Item<'a> {
    /// An object: a candidate event.
    Object(EventView<'a>),
    /// Anything else, by JSON kind.
    Other(&'static str),
}

/// The fields of an event object the parser reads (both schemas).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct EventView<'a> {
    /// `id`.
    pub id: Option<Scalar<'a>>,
    /// `eventType` (Event Grid).
    pub event_type: Option<Scalar<'a>>,
    /// `type` (CloudEvents).
    pub type_: Option<Scalar<'a>>,
    /// `topic` (Event Grid).
    pub topic: Option<Scalar<'a>>,
    /// `source` (CloudEvents).
    pub source: Option<Scalar<'a>>,
    /// `subject`.
    pub subject: Option<Scalar<'a>>,
    /// `eventTime` (Event Grid).
    pub event_time: Option<Scalar<'a>>,
    /// `time` (CloudEvents).
    pub time: Option<Scalar<'a>>,
    /// `data`.
    pub data: Option<Data<'a>>,
    /// Whether a `specversion` key is present (with any value).
    pub has_specversion: bool,
    /// Whether an `eventType` key is present (with any value).
    pub has_event_type: bool,
    /// The smallest five distinct keys, for messages (only needed, and only complete, when the
    /// element uses neither schema: keys stop being collected at the first schema key).
    pub first_keys: FirstKeys<'a>,
}

/// The smallest keys of an object in byte order, distinct, at most five.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct FirstKeys<'a>([Option<Cow<'a, str>>; 5]);

impl<'a> FirstKeys<'a> {
    #[allow(clippy::ptr_arg, reason = "the key is kept as it came, borrowed or owned")]
    fn offer(&mut self, key: &Cow<'a, str>) {
        let mut at = 0;
        while let Some(Some(have)) = self.0.get(at) {
            match key.as_ref().cmp(have.as_ref()) {
                std::cmp::Ordering::Less => break,
                std::cmp::Ordering::Equal => return,
                std::cmp::Ordering::Greater => at += 1,
            }
        }
        if let Some(tail) = self.0.get_mut(at..)
            && !tail.is_empty()
        {
            tail.rotate_right(1);
            tail[0] = Some(key.clone());
        }
    }

    /// The keys, smallest first.
    pub(crate) fn list(&self) -> Vec<&str> {
        self.0.iter().map_while(|k| k.as_deref()).collect()
    }
}

/// A delivery body.
#[derive(Debug)]
#[allow(clippy::large_enum_variant, reason = "one per delivery")]
pub(crate) enum Body<'a> {
    /// A JSON array of elements.
    Array(Vec<Item<'a>>),
    /// A single object.
    Object(EventView<'a>),
    /// Anything else.
    Other,
}

/// Where the elements of an array body go, one by one, as they are read.
pub(crate) trait Items<'a> {
    /// Takes the next element.
    fn push(&mut self, item: Item<'a>);
}

impl<'a> Items<'a> for Vec<Item<'a>> {
    fn push(&mut self, item: Item<'a>) {
        Vec::push(self, item);
    }
}

/// The shape of a body whose array elements went to an [`Items`].
#[derive(Debug)]
#[allow(clippy::large_enum_variant, reason = "one per delivery")]
pub(crate) enum Shape<'a> {
    /// A JSON array (its elements were pushed).
    Array,
    /// A single object.
    Object(EventView<'a>),
    /// Anything else, by JSON kind.
    Other(&'static str),
}

impl<'a> Body<'a> {
    /// Reads a body in one pass. `Err` when it is not JSON, or uses the raw-value quirk (see the
    /// module docs): the caller then falls back to `serde_json::Value` for the verdict.
    #[cfg(test)]
    pub(crate) fn from_slice(json: &'a [u8]) -> Result<Body<'a>, serde_json::Error> {
        let mut items = Vec::new();
        Ok(Body::of(read_slice(json, &mut items)?, items))
    }

    /// The body held in a `serde_json::Value` (does not fail in practice).
    pub(crate) fn from_value(value: &'a Value) -> Result<Body<'a>, serde_json::Error> {
        let mut items = Vec::new();
        Ok(Body::of(read_value(value, &mut items)?, items))
    }

    fn of(shape: Shape<'a>, items: Vec<Item<'a>>) -> Body<'a> {
        match shape {
            Shape::Array => Body::Array(items),
            Shape::Object(view) => Body::Object(view),
            Shape::Other(_) => Body::Other,
        }
    }
}

/// Reads a body in one pass, handing array elements to `items` as they are read (a batch is never
/// held as views). `Err` as for [`Body::from_slice`]; `items` may then hold a prefix of the array.
///
/// A body that is valid UTF-8 as a whole is read as text, so that serde_json does not check every
/// string again; any other body is read as bytes, with the same verdict (invalid UTF-8 is an error
/// either way).
pub(crate) fn read_slice<'a, S: Items<'a>>(
    json: &'a [u8],
    items: &mut S,
) -> Result<Shape<'a>, serde_json::Error> {
    fn run<'a, R: serde_json::de::Read<'a>, S: Items<'a>>(
        mut de: serde_json::Deserializer<R>,
        items: &mut S,
    ) -> Result<Shape<'a>, serde_json::Error> {
        let shape = BodySeed {
            mode: Mode::Text,
            items,
        }
        .deserialize(&mut de)?;
        de.end()?;
        Ok(shape)
    }
    match std::str::from_utf8(json) {
        Ok(text) => run(serde_json::Deserializer::from_str(text), items),
        Err(_) => run(serde_json::Deserializer::from_slice(json), items),
    }
}

/// Reads a body held in a `serde_json::Value`, handing array elements to `items`.
pub(crate) fn read_value<'a, S: Items<'a>>(
    value: &'a Value,
    items: &mut S,
) -> Result<Shape<'a>, serde_json::Error> {
    BodySeed {
        mode: Mode::Value,
        items,
    }
    .deserialize(value)
}

/// Where values come from: JSON text (walk everything, refuse the raw-value quirk) or a `Value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Text,
    Value,
}

/// Where a key goes: its index in a key list, and whether it matched exactly.
fn lookup(names: &[&str], key: &str) -> Option<(usize, bool)> {
    if let Some(i) = names.iter().position(|n| *n == key) {
        return Some((i, true));
    }
    names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(key))
        .map(|i| (i, false))
}

/// Where an envelope key goes ([`lookup`] in [`ENVELOPE_KEYS`]), the exact names first by a
/// `match` (every key of every element comes here).
fn envelope_key(key: &str) -> Option<(usize, bool)> {
    let at = match key {
        "id" => 0,
        "eventType" => 1,
        "type" => 2,
        "topic" => 3,
        "source" => 4,
        "subject" => 5,
        "eventTime" => 6,
        "time" => 7,
        "data" => 8,
        "specversion" => 9,
        _ => return lookup(&ENVELOPE_KEYS, key),
    };
    Some((at, true))
}

/// One field being read: the value of the exact key, and of the smallest other-cased key.
struct Slot<'a, T> {
    exact: Option<T>,
    folded: Option<(Cow<'a, str>, T)>,
}

impl<'a, T> Default for Slot<'a, T> {
    fn default() -> Self {
        Slot {
            exact: None,
            folded: None,
        }
    }
}

impl<'a, T> Slot<'a, T> {
    #[allow(clippy::ptr_arg, reason = "the key is kept as it came, borrowed or owned")]
    fn offer(&mut self, key: &Cow<'a, str>, exact: bool, value: T) {
        if exact {
            self.exact = Some(value);
        } else if self
            .folded
            .as_ref()
            .is_none_or(|(k, _)| key.as_ref() <= k.as_ref())
        {
            self.folded = Some((key.clone(), value));
        }
    }

    fn get(self) -> Option<T> {
        self.exact.or(self.folded.map(|(_, v)| v))
    }
}

/// A map key, borrowed when it had no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// The next key of a map; refuses the raw-value quirk on the first key of JSON text.
fn next_key<'de, A: MapAccess<'de>>(
    map: &mut A,
    mode: Mode,
    first: &mut bool,
) -> Result<Option<Cow<'de, str>>, A::Error> {
    let key = map.next_key_seed(KeySeed)?;
    if std::mem::take(first) && mode == Mode::Text && key.as_deref() == Some(RAW_VALUE_TOKEN) {
        return Err(de::Error::custom("raw value token as first key"));
    }
    Ok(key)
}

/// Any value, walked (so JSON text is checked as `Value` would check it) and dropped.
#[derive(Clone, Copy)]
struct Skip(Mode);

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        match self.0 {
            Mode::Text => deserializer.deserialize_any(self),
            Mode::Value => deserializer.deserialize_ignored_any(IgnoredAny).map(drop),
        }
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut first = true;
        while next_key(&mut map, self.0, &mut first)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

/// Any value as a [`Scalar`].
#[derive(Clone, Copy)]
struct ScalarSeed(Mode);

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Scalar<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// The scalar visits shared by every visitor here (as `serde_json::Value` builds them).
macro_rules! scalar_visits {
    ($wrap:expr) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(($wrap)(Scalar::Null))
        }

        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(($wrap)(Scalar::Bool))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(($wrap)(Scalar::Number(v.into())))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(($wrap)(Scalar::Number(v.into())))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(($wrap)(
                Number::from_f64(v).map_or(Scalar::Null, Scalar::Number),
            ))
        }

        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(($wrap)(Scalar::Str(Cow::Borrowed(v))))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(($wrap)(Scalar::Str(Cow::Owned(v.to_string()))))
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(($wrap)(Scalar::Str(Cow::Owned(v))))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element_seed(Skip(self.0))?.is_some() {}
            Ok(($wrap)(Scalar::Array))
        }
    };
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    scalar_visits!(std::convert::identity);

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut first = true;
        while next_key(&mut map, self.0, &mut first)?.is_some() {
            map.next_value_seed(Skip(self.0))?;
        }
        Ok(Scalar::Object)
    }
}

/// `data` as a [`Data`].
#[derive(Clone, Copy)]
struct DataSeed(Mode);

impl<'de> DeserializeSeed<'de> for DataSeed {
    type Value = Data<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DataSeed {
    type Value = Data<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    scalar_visits!(Data::Scalar);

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        DataViewVisitor(self.0).visit_map(map).map(Data::Object)
    }
}

/// The fields of a `data` object.
struct DataViewVisitor(Mode);

impl DataViewVisitor {
    fn visit_map<'de, A: MapAccess<'de>>(self, mut map: A) -> Result<DataView<'de>, A::Error> {
        let mut key_vault: [Slot<'de, Scalar<'de>>; 7] = Default::default();
        let mut handshake: [Slot<'de, Scalar<'de>>; 3] = Default::default();
        let mut first = true;
        while let Some(key) = next_key(&mut map, self.0, &mut first)? {
            let trimmed = key.trim();
            if let Some(i) = KEY_VAULT_FIELDS
                .iter()
                .position(|n| n.eq_ignore_ascii_case(trimmed))
            {
                let exact = key == KEY_VAULT_FIELDS[i];
                key_vault[i].offer(&key, exact, map.next_value_seed(ScalarSeed(self.0))?);
            } else if let Some((i, exact)) = lookup(&HANDSHAKE_KEYS, &key) {
                handshake[i].offer(&key, exact, map.next_value_seed(ScalarSeed(self.0))?);
            } else {
                map.next_value_seed(Skip(self.0))?;
            }
        }
        let [validation_code, validation_url, event_subscription_id] = handshake.map(Slot::get);
        Ok(DataView {
            key_vault: key_vault.map(Slot::get),
            validation_code,
            validation_url,
            event_subscription_id,
        })
    }
}

/// An element as an [`Item`].
#[derive(Clone, Copy)]
struct ItemSeed(Mode);

impl<'de> DeserializeSeed<'de> for ItemSeed {
    type Value = Item<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed {
    type Value = Item<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    scalar_visits!(|s: Scalar<'_>| Item::Other(s.kind()));

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        EventViewVisitor(self.0).visit_map(map).map(Item::Object)
    }
}

/// The fields of an event object.
struct EventViewVisitor(Mode);

impl EventViewVisitor {
    fn visit_map<'de, A: MapAccess<'de>>(self, mut map: A) -> Result<EventView<'de>, A::Error> {
        let mut fields: [Slot<'de, Scalar<'de>>; 8] = Default::default();
        let mut data: Slot<'de, Data<'de>> = Slot::default();
        let mut view = EventView::default();
        let mut first = true;
        while let Some(key) = next_key(&mut map, self.0, &mut first)? {
            // The keys are quoted only when the element uses neither schema.
            if !(view.has_specversion || view.has_event_type) {
                view.first_keys.offer(&key);
            }
            match envelope_key(&key) {
                Some((8, exact)) => data.offer(&key, exact, map.next_value_seed(DataSeed(self.0))?),
                Some((9, _)) => {
                    view.has_specversion = true;
                    map.next_value_seed(Skip(self.0))?;
                }
                Some((i, exact)) => {
                    view.has_event_type |= i == 1;
                    if let Some(slot) = fields.get_mut(i) {
                        slot.offer(&key, exact, map.next_value_seed(ScalarSeed(self.0))?);
                    }
                }
                None => map.next_value_seed(Skip(self.0))?,
            }
        }
        let [id, event_type, type_, topic, source, subject, event_time, time] = fields.map(Slot::get);
        Ok(EventView {
            id,
            event_type,
            type_,
            topic,
            source,
            subject,
            event_time,
            time,
            data: data.get(),
            ..view
        })
    }
}

/// A body as a [`Shape`], its array elements pushed to `items`.
struct BodySeed<'s, S> {
    mode: Mode,
    items: &'s mut S,
}

impl<'de, S: Items<'de>> DeserializeSeed<'de> for BodySeed<'_, S> {
    type Value = Shape<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, S: Items<'de>> Visitor<'de> for BodySeed<'_, S> {
    type Value = Shape<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Shape::Other("null"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Shape::Other("boolean"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Shape::Other("number"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Shape::Other("number"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Shape::Other(if v.is_finite() { "number" } else { "null" }))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Shape::Other("string"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while let Some(item) = seq.next_element_seed(ItemSeed(self.mode))? {
            self.items.push(item);
        }
        Ok(Shape::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        EventViewVisitor(self.mode).visit_map(map).map(Shape::Object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Reads `json` both ways (one pass, and through `Value`) and checks they agree.
    fn both(json: &str) -> Item<'_> {
        let Ok(Body::Object(one_pass)) = Body::from_slice(json.as_bytes()) else {
            panic!("not an object: {json}")
        };
        let value: Value = serde_json::from_str(json).unwrap();
        let Ok(Body::Object(via_value)) = Body::from_value(&value) else {
            panic!()
        };
        assert_eq!(format!("{one_pass:?}"), format!("{via_value:?}"), "{json}");
        Item::Object(one_pass)
    }

    fn view(item: Item<'_>) -> EventView<'_> {
        match item {
            Item::Object(v) => v,
            Item::Other(k) => panic!("{k}"),
        }
    }

    #[test]
    fn envelope_keys_match_their_list() {
        for (i, name) in ENVELOPE_KEYS.iter().enumerate() {
            assert_eq!(envelope_key(name), Some((i, true)), "{name}");
            assert_eq!(
                envelope_key(&name.to_ascii_uppercase()),
                Some((i, false)),
                "{name}"
            );
        }
        assert_eq!(envelope_key("dataVersion"), None);
    }

    #[test]
    fn later_duplicates_win_and_exact_keys_beat_other_casings() {
        let v = view(both(r#"{"id": "a", "ID": "b", "id": "c", "Id": "d", "iD": "e"}"#));
        assert_eq!(text(v.id.as_ref()), Some("c"));
        let v = view(both(r#"{"iD": "e", "Id": "d", "ID": "b", "ID": "f"}"#));
        assert_eq!(text(v.id.as_ref()), Some("f"));
        let v = view(both(
            r#"{"data": {"objectName": "b", "ObjectName ": "x", "ObjectName": "a", "OBJECTNAME": "c"}}"#,
        ));
        let Some(Data::Object(d)) = v.data else { panic!() };
        assert_eq!(text(d.key_vault[3].as_ref()), Some("a"));
    }

    #[test]
    fn first_keys_are_the_smallest_five_distinct() {
        let v = view(both(
            r#"{"g": 1, "b": 1, "f": 1, "a": 1, "b": 2, "e": 1, "c": 1, "d": 1}"#,
        ));
        assert_eq!(v.first_keys.list(), ["a", "b", "c", "d", "e"]);
        let v = view(both(r#"{"b": 1, "a": 1}"#));
        assert_eq!(v.first_keys.list(), ["a", "b"]);
    }

    #[test]
    fn escaped_strings_are_owned_and_others_borrowed() {
        let v = view(both(r#"{"id": "a\u0062", "subject": "s", "\u0074ype": "t"}"#));
        assert!(matches!(v.id, Some(Scalar::Str(Cow::Owned(ref s))) if s == "ab"));
        assert!(matches!(v.subject, Some(Scalar::Str(Cow::Borrowed("s")))));
        assert_eq!(text(v.type_.as_ref()), Some("t"));
    }

    #[test]
    fn the_raw_value_token_is_left_to_value() {
        for json in [
            r#"{"$serde_json::private::RawValue": "{\"id\": 1}"}"#,
            r#"[{"data": {"$serde_json::private::RawValue": "1"}}]"#,
            r#"[{"x": [{"$serde_json::private::RawValue": 1}]}]"#,
        ] {
            assert!(Body::from_slice(json.as_bytes()).is_err(), "{json}");
        }
        // Not first: an ordinary key, in both modes.
        let v = view(both(r#"{"a": 1, "$serde_json::private::RawValue": "x"}"#));
        assert_eq!(v.first_keys.list(), ["$serde_json::private::RawValue", "a"]);
        let value = json!({"$serde_json::private::RawValue": "x"});
        assert!(Body::from_value(&value).is_ok());
    }

    #[test]
    fn numbers_and_kinds_match_value() {
        let v = view(both(
            r#"{"id": 7, "type": -3, "time": 1.5e3, "topic": [1, {"a": 2}], "source": {"b": null}, "subject": true}"#,
        ));
        assert_eq!(v.id, Some(Scalar::Number(7.into())));
        assert_eq!(v.type_, Some(Scalar::Number((-3).into())));
        assert_eq!(v.time.as_ref().map(Scalar::kind), Some("number"));
        assert_eq!(v.topic, Some(Scalar::Array));
        assert_eq!(v.source, Some(Scalar::Object));
        assert_eq!(v.subject, Some(Scalar::Bool));
    }
}
