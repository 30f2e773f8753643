//! Pure parsing of Event Grid deliveries: bytes and headers in, Key Vault changes or a handshake out.
//!
//! Two entry points:
//! - [`parse_delivery`] for a webhook POST from Event Grid (Event Grid schema, CloudEvents 1.0
//!   structured, batch or binary mode);
//! - [`parse_functions_request`] for an Azure Functions custom-handler invocation
//!   (`{"Data": {<binding>: event}, "Metadata": {...}}`).
//!
//! Both return a [`Delivery`]: a subscription-validation handshake, a subscription-deletion notice,
//! or a list of [`Event`]s. Nothing here does I/O or reads a clock.
//!
//! # Detection
//! - Content type (webhook only): `application/json`, `application/cloudevents+json`,
//!   `application/cloudevents-batch+json`, `text/plain` and a missing content type are accepted,
//!   case-insensitively and ignoring parameters such as `; charset=utf-8`. Anything else is
//!   [`DeliveryError::UnsupportedContentType`] (HTTP 415).
//! - CloudEvents binary mode: a `ce-specversion` header and a content type that is not
//!   `application/cloudevents…`; the envelope comes from the `ce-*` headers (percent-decoded) and
//!   the body is `data`.
//! - Otherwise the body's shape decides: a JSON array is a batch, a single object is one event.
//!   Each element is classified on its own: a `specversion` key means CloudEvents, an `eventType`
//!   key means Event Grid schema.
//! - Handshakes: the header `aeg-event-type: SubscriptionValidation` or an event of type
//!   `Microsoft.EventGrid.SubscriptionValidationEvent` is a [`Delivery::Validation`];
//!   `SubscriptionDeletion`/`Unsubscribe` or `Microsoft.EventGrid.SubscriptionDeletedEvent` is a
//!   [`Delivery::Deletion`]. A handshake event anywhere in the body wins over the other elements
//!   (Event Grid sends handshakes alone).
//!
//! # Mapping Key Vault events
//! The ten `Microsoft.KeyVault.*` types (matched case-insensitively) become [`KeyVaultEvent`]s;
//! every other type, including unknown `Microsoft.KeyVault.*` ones, is [`Event::Other`]
//! (acknowledged, counted, not acted on). `data` keys are matched case-insensitively (and with
//! surrounding spaces trimmed), string values are trimmed, unknown fields are ignored, and `data`
//! may also be a JSON-encoded string.
//! - Object kind: from the event type family (`ObjectType` is not trusted).
//! - Object name: `ObjectName`, else the `/secrets|keys|certificates/<name>` segment of `Id`, else
//!   `subject`. Names must look like Key Vault names (`[0-9A-Za-z-]`, at most 127 chars).
//! - Vault: the host of `Id` when `Id` is an absolute http(s) URL and the host is a known cloud's
//!   vault host, or its first label equals `VaultName`, or `VaultName` is absent. Otherwise
//!   `VaultName` joined with the configured cloud's suffix, and as a last resort the vault name at
//!   the end of the `topic`/`source` ARM id.
//!
//! # Policy for mixed batches
//! Valid events are returned in [`Events::events`]; invalid elements (not an object, no schema
//! keys, no `id` or type, a Key Vault event without a usable vault or object name) are listed in
//! [`Events::rejected`] with their index and a short reason, for the caller to log and count.
//! The delivery is [`DeliveryError::Malformed`] (HTTP 400, which Event Grid does not retry) when
//! the body is not JSON, is not an array or object, or when every element was rejected. An empty
//! array is a valid delivery with no events.
//!
//! Reasons and error messages quote at most a short excerpt of the input, and no input can make
//! the parser panic or overflow the stack (serde_json's recursion limit bounds nesting).

mod functions;
mod keyvault;
mod object_url;
mod parse;
mod schema;
mod view;

#[cfg(test)]
mod samples_tests;

pub use functions::parse_functions_request;
pub use parse::parse_delivery;

use std::borrow::Cow;
use std::sync::Arc;

use crate::core::model::{ChangeKind, ObjectRef, VaultChange, VaultId};

/// What one delivery (one HTTP request) carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Event Grid's subscription validation handshake: answer `{"validationResponse": code}`.
    Validation {
        /// `data.validationCode`, to echo back.
        code: String,
        /// `data.validationUrl`, for manual (asynchronous) validation, when present.
        validation_url: Option<String>,
    },
    /// The subscription was deleted: no more events will arrive.
    Deletion {
        /// `data.eventSubscriptionId`, the ARM id of the deleted subscription, when present.
        subscription_id: Option<String>,
    },
    /// Ordinary events.
    Events(Events),
}

/// The events of one delivery, with the elements that could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Events {
    /// The wire format the delivery used.
    pub format: Format,
    /// The usable events, in delivery order.
    pub events: Vec<Event>,
    /// Elements that were skipped, in delivery order.
    pub rejected: Vec<Rejected>,
}

impl Events {
    /// The Key Vault events of the delivery.
    pub fn key_vault(&self) -> impl Iterator<Item = &KeyVaultEvent> {
        self.events.iter().filter_map(|e| match e {
            Event::KeyVault(kv) => Some(kv),
            Event::Other { .. } => None,
        })
    }

    /// The object changes the delivery announces (access-policy changes have none).
    pub fn changes(&self) -> Vec<VaultChange> {
        self.key_vault().filter_map(KeyVaultEvent::change).collect()
    }
}

/// The wire format of a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Event Grid schema (a JSON array of events, or one event object).
    EventGrid,
    /// CloudEvents 1.0, structured mode, one event.
    CloudEvents,
    /// CloudEvents 1.0, a JSON array of events.
    CloudEventsBatch,
    /// CloudEvents 1.0, binary mode (`ce-*` headers, the body is `data`).
    CloudEventsBinary,
}

impl Format {
    /// Lowercase label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::EventGrid => "eventgrid",
            Format::CloudEvents => "cloudevents",
            Format::CloudEventsBatch => "cloudevents_batch",
            Format::CloudEventsBinary => "cloudevents_binary",
        }
    }
}

/// One usable event of a delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "the HTTP layer matches `Event::KeyVault(kv)` by value; events live briefly in one Vec"
)]
pub enum Event {
    /// One of the ten Key Vault event types.
    KeyVault(KeyVaultEvent),
    /// Any other event type: acknowledged and counted, not acted on. Both fields are cut to at most
    /// 256 characters.
    Other {
        /// The event id.
        id: String,
        /// The event type as sent.
        event_type: String,
    },
}

impl Event {
    /// The event id.
    pub fn id(&self) -> &str {
        match self {
            Event::KeyVault(kv) => kv.id(),
            Event::Other { id, .. } => id,
        }
    }

    /// The event type as sent.
    pub fn event_type(&self) -> &str {
        match self {
            Event::KeyVault(kv) => &kv.event_type,
            Event::Other { event_type, .. } => event_type,
        }
    }
}

/// A Key Vault event, mapped onto the domain types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyVaultEvent {
    /// The id, time and subject: see [`KeyVaultEvent::id`], [`KeyVaultEvent::time`] and
    /// [`KeyVaultEvent::subject`].
    texts: Texts,
    /// The event type as sent, e.g. `Microsoft.KeyVault.SecretNewVersionCreated` (borrowed from
    /// a constant when sent in the documented casing, as it always is).
    pub event_type: Cow<'static, str>,
    /// What happened.
    pub kind: KeyVaultEventKind,
    /// The vault: the host of `data.Id`, else `data.VaultName` in the configured cloud.
    pub vault: VaultId,
    /// The object; `None` only for [`KeyVaultEventKind::AccessPolicyChanged`].
    pub object: Option<ObjectRef>,
    /// `data.Version` (else the version segment of `data.Id`), when present.
    pub version: Option<std::sync::Arc<str>>,
    /// `data.NBF`: not-before, seconds since the Unix epoch, when present and numeric.
    pub nbf: Option<i64>,
    /// `data.EXP`: expiry, seconds since the Unix epoch, when present and numeric.
    pub exp: Option<i64>,
    /// Event Grid `topic` / CloudEvents `source`: the vault's ARM id (shared by the events of a
    /// delivery that name the same one).
    pub source: Option<Arc<str>>,
}

/// Texts an event carries only to be logged, in one allocation: the id, then the time, then the
/// subject. Absent and empty are the same (the parser keeps no empty text).
#[derive(Clone, PartialEq, Eq)]
struct Texts {
    all: Box<str>,
    /// End of the id in `all`.
    id_end: usize,
    /// End of the time in `all` (the subject follows).
    time_end: usize,
}

impl Texts {
    fn new(id: &str, time: Option<&str>, subject: Option<&str>) -> Texts {
        let (time, subject) = (time.unwrap_or_default(), subject.unwrap_or_default());
        let mut all = String::with_capacity(id.len() + time.len() + subject.len());
        all.push_str(id);
        all.push_str(time);
        all.push_str(subject);
        Texts {
            all: all.into_boxed_str(),
            id_end: id.len(),
            time_end: id.len() + time.len(),
        }
    }

    fn part(&self, from: usize, to: usize) -> &str {
        // The ends are where whole strings were joined: always in range and on boundaries.
        self.all.get(from..to).unwrap_or_default()
    }

    fn id(&self) -> &str {
        self.part(0, self.id_end)
    }

    fn time(&self) -> Option<&str> {
        Some(self.part(self.id_end, self.time_end)).filter(|t| !t.is_empty())
    }

    fn subject(&self) -> Option<&str> {
        Some(self.part(self.time_end, self.all.len())).filter(|t| !t.is_empty())
    }
}

impl std::fmt::Debug for Texts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Texts")
            .field("id", &self.id())
            .field("time", &self.time())
            .field("subject", &self.subject())
            .finish()
    }
}

impl KeyVaultEvent {
    /// The event id (Event Grid `id` / CloudEvents `id`), cut to at most 256 characters (it is
    /// only logged).
    pub fn id(&self) -> &str {
        self.texts.id()
    }

    /// Event Grid `eventTime` / CloudEvents `time`, as sent.
    pub fn time(&self) -> Option<&str> {
        self.texts.time()
    }

    /// Event Grid / CloudEvents `subject`: the object name.
    pub fn subject(&self) -> Option<&str> {
        self.texts.subject()
    }

    /// The documented name of the event's type, whatever casing it was sent in (one of ten: a
    /// bounded metric label).
    pub fn type_name(&self) -> &'static str {
        keyvault::canonical_type(self.kind, self.object.as_ref().map(|o| o.kind))
    }

    /// The object change this event announces; `None` for access-policy changes.
    pub fn change(&self) -> Option<VaultChange> {
        Some(VaultChange {
            object: self.object.clone()?,
            version: self.version.clone(),
            kind: self.kind.change_kind()?,
        })
    }
}

/// The four things Key Vault reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyVaultEventKind {
    /// `*NewVersionCreated`.
    NewVersion,
    /// `*NearExpiry`.
    NearExpiry,
    /// `*Expired`.
    Expired,
    /// `VaultAccessPolicyChanged`.
    AccessPolicyChanged,
}

impl KeyVaultEventKind {
    /// Lowercase label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyVaultEventKind::NewVersion => "new_version",
            KeyVaultEventKind::NearExpiry => "near_expiry",
            KeyVaultEventKind::Expired => "expired",
            KeyVaultEventKind::AccessPolicyChanged => "access_policy_changed",
        }
    }

    /// The object change kind; `None` for access-policy changes.
    pub fn change_kind(self) -> Option<ChangeKind> {
        match self {
            KeyVaultEventKind::NewVersion => Some(ChangeKind::NewVersion),
            KeyVaultEventKind::NearExpiry => Some(ChangeKind::NearExpiry),
            KeyVaultEventKind::Expired => Some(ChangeKind::Expired),
            KeyVaultEventKind::AccessPolicyChanged => None,
        }
    }
}

/// An element of a delivery that was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// Its position in the delivered array (0 for a single event).
    pub index: usize,
    /// Its id, when it had one (cut to at most 128 characters).
    pub id: Option<String>,
    /// Why it was skipped; quotes at most short excerpts of the input.
    pub reason: String,
}

/// Why a delivery as a whole cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The content type is not one Event Grid sends (HTTP 415).
    #[error("unsupported content type {0:?}")]
    UnsupportedContentType(String),
    /// The body is not a usable delivery (HTTP 400; Event Grid does not retry it).
    #[error("malformed delivery: {0}")]
    Malformed(String),
}

/// At most `max` characters of `text`, with `…` when cut.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    cut(text, max).into_owned()
}

/// [`excerpt`], borrowed when `text` is short enough.
pub(crate) fn cut(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        // No more characters than bytes.
        return Cow::Borrowed(text);
    }
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some((at, _)) => Cow::Owned(format!("{}…", &text[..at])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_keep_each_part_and_its_absence() {
        for (id, time, subject) in [
            ("e1", Some("2024-01-01T00:00:00Z"), Some("db")),
            ("e2", None, Some("é-ü")),
            ("ü", Some("t"), None),
            ("e4", None, None),
        ] {
            let t = Texts::new(id, time, subject);
            assert_eq!((t.id(), t.time(), t.subject()), (id, time, subject));
        }
        assert_eq!(cut("abc", 3), "abc");
        assert!(matches!(cut("abc", 3), Cow::Borrowed(_)));
        assert_eq!(cut("äbcd", 2), "äb…");
    }
}
