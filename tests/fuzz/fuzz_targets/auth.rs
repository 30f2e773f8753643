//! The delivery authentication front end: `Authenticator::authenticate` with random headers
//! (`Authorization`, the shared-secret header, …) and a random query string, with a shared secret
//! and Entra ID both configured. The Entra signing keys come from a local identity provider on
//! loopback (a thread in this process) serving a fixed RSA public key; the seed corpus holds one
//! token signed with its (discarded) private key, so the accepting path is covered too.
//!
//! Input: header lines, an empty line, then the raw query string (see `kvsync_fuzz::split_message`).
//!
//! Invariants: never `Unavailable` (the keys are reachable); `Allowed` by shared secret only when
//! the exact secret was presented in the secret header or a `code` parameter; `Allowed` by Entra
//! only for the one validly signed token.
#![no_main]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::OnceLock;
use std::time::Duration;

use kvsync::auth::{AuthArgs, AuthOutcome, Authenticator, DEFAULT_SECRET_HEADER, EntraOptions};
use kvsync_fuzz::split_message;
use libfuzzer_sys::fuzz_target;

const KEY: &str = "fuzz-shared-secret-0123456789";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const AUDIENCE: &str = "api://kvsync-webhook";
const JWK_N: &str = include_str!("../fixtures/idp-jwk-n.txt");
const VALID_TOKEN: &str = include_str!("../fixtures/valid-token.txt");

struct Fixture {
    rt: tokio::runtime::Runtime,
    auth: Authenticator,
}

/// A minimal HTTP/1.1 server on loopback: the OpenID metadata and the JWKS, `Connection: close`.
fn start_idp() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let body = if request.contains("openid-configuration") {
                format!(
                    r#"{{"jwks_uri":"http://127.0.0.1:{port}/keys","issuer":"https://login.microsoftonline.com/{TENANT}/v2.0"}}"#
                )
            } else {
                format!(
                    r#"{{"keys":[{{"kty":"RSA","use":"sig","kid":"fuzz-key","n":"{}","e":"AQAB"}}]}}"#,
                    JWK_N.trim()
                )
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let port = start_idp();
        let args = AuthArgs {
            shared_secrets: vec![KEY.to_string()],
            entra_tenant_id: Some(TENANT.to_string()),
            entra_audience: vec![AUDIENCE.to_string()],
            entra_metadata_url: Some(format!(
                "http://127.0.0.1:{port}/{TENANT}/v2.0/.well-known/openid-configuration"
            )),
            entra_require_role: true,
            ..AuthArgs::default()
        };
        let options = EntraOptions {
            // Unknown `kid`s must not make every execution refetch the keys.
            min_refresh_interval: Duration::from_secs(3600),
            refresh_interval: Duration::from_secs(24 * 3600),
            http_timeout: Duration::from_secs(5),
            leeway: Duration::from_secs(60),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let auth = rt.block_on(async { Authenticator::from_args_with(&args, options).expect("auth config") });
        Fixture { rt, auth }
    })
}

/// Whether the exact shared secret was presented (secret header or a `code` query parameter).
fn secret_presented(headers: &http::HeaderMap, query: &str) -> bool {
    headers
        .get_all(DEFAULT_SECRET_HEADER)
        .iter()
        .any(|v| v.as_bytes() == KEY.as_bytes())
        || query.split('&').any(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            percent_encoding::percent_decode_str(k).collect::<Vec<u8>>() == b"code"
                && percent_encoding::percent_decode_str(v).collect::<Vec<u8>>() == KEY.as_bytes()
        })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let (headers, rest) = split_message(data);
    let query = std::str::from_utf8(rest).ok();
    let outcome = f.rt.block_on(f.auth.authenticate(&headers, query));
    match outcome {
        AuthOutcome::Unavailable(why) => panic!("keys are reachable, yet Unavailable: {why}"),
        AuthOutcome::Allowed {
            method: "shared_secret",
        } => {
            assert!(
                secret_presented(&headers, query.unwrap_or_default()),
                "secret accepted but not presented"
            );
        }
        AuthOutcome::Allowed { method: "entra" } => {
            let value = headers
                .get(http::header::AUTHORIZATION)
                .expect("a token was presented");
            let text = std::str::from_utf8(value.as_bytes()).expect("utf-8 token");
            let token = text
                .trim()
                .split_once(' ')
                .map(|(_, t)| t.trim())
                .unwrap_or_default();
            assert_eq!(
                token,
                VALID_TOKEN.trim(),
                "a token other than the signed one was accepted"
            );
        }
        AuthOutcome::Allowed { method } => panic!("unexpected method {method}"),
        AuthOutcome::Denied(_) => {}
    }
});
