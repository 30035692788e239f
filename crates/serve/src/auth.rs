//! Bearer-token authentication for the API.

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

/// The secret clients must send as `Authorization: Bearer <token>`. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token. An empty token is refused: it would let any client in.
    ///
    /// ```
    /// use weft_serve::Token;
    /// let token = Token::new("s3cret").unwrap();
    /// assert_eq!(format!("{token:?}"), "Token(<redacted>)");
    /// assert!(Token::new("").is_none());
    /// ```
    #[must_use]
    pub fn new(token: impl Into<String>) -> Option<Token> {
        let token = token.into();
        (!token.is_empty()).then_some(Token(token))
    }

    fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// What the middleware compares against: the token's digest, so that the comparison's time
/// depends on neither the token's length nor where a guess first differs.
#[derive(Debug)]
pub(crate) struct Auth {
    digest: [u8; 32],
}

impl Auth {
    pub(crate) fn new(token: &Token) -> Self {
        Auth {
            digest: token.digest(),
        }
    }

    pub(crate) fn accepts(&self, presented: &[u8]) -> bool {
        let got: [u8; 32] = Sha256::digest(presented).into();
        // Every byte is compared whatever the earlier ones were; black_box keeps the
        // optimiser from turning the fold into an early exit.
        let diff = got
            .iter()
            .zip(self.digest.iter())
            .fold(0u8, |acc, (a, b)| acc | std::hint::black_box(a ^ b));
        diff == 0
    }
}

/// Lets a request through only with the right `Authorization: Bearer` header; otherwise 401
/// with a JSON body and `WWW-Authenticate: Bearer`.
pub(crate) async fn require_token(
    State(auth): State<Arc<Auth>>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    match presented {
        Some(token) if auth.accepts(token) => next.run(request).await,
        _ => {
            let mut resp = super::api::error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token (send `Authorization: Bearer <token>`)",
            );
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_is_accepted() {
        let auth = Auth::new(&Token::new("abc").unwrap_or_else(|| unreachable!()));
        assert!(auth.accepts(b"abc"));
        for wrong in [&b""[..], b"ab", b"abcd", b"abd", b"ABC"] {
            assert!(!auth.accepts(wrong), "{wrong:?}");
        }
    }
}
