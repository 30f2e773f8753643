//! Reading a request body under a size limit, checked while streaming.

use axum::body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body (or its declared Content-Length) exceeds the limit.
    #[error("body exceeds {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The client stopped sending or the stream broke.
    #[error("failed to read body: {0}")]
    Read(String),
}

/// Reads at most `limit` bytes; stops reading as soon as the limit is crossed, so an oversized or
/// endless body never gets buffered. A declared `Content-Length` over the limit is refused unread.
pub async fn read_limited(
    headers: &http::HeaderMap,
    body: Body,
    limit: usize,
) -> Result<bytes_alias::Bytes, BodyError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(BodyError::TooLarge { limit }),
        Err(e) => Err(BodyError::Read(e.to_string())),
    }
}

/// Re-export so callers need no direct `bytes` dependency.
pub mod bytes_alias {
    pub use axum::body::Bytes;
}
