//! The one error type that crosses the seam between the MediaFire client and
//! the WebDAV adapter.
//!
//! An [`Error`] says *what kind* of failure happened ([`ErrorKind`]) and
//! whether trying again can help ([`Retry`]); it carries the MediaFire action
//! and error code when there is one, plus a little context (path, keys, HTTP
//! status). It never carries a secret: callers must not put tokens, cookies
//! or passwords into the context.

use std::borrow::Cow;
use std::fmt;

/// What kind of failure an [`Error`] is. The WebDAV adapter maps each kind to
/// one HTTP status; the MediaFire client decides the kind from error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file, folder, key or path does not exist.
    NotFound,
    /// A file or folder with that name already exists.
    AlreadyExists,
    /// Access denied, read-only, or an operation MediaFire refuses on this item.
    Forbidden,
    /// The account's storage limit (or a size limit) is reached.
    QuotaExceeded,
    /// MediaFire rejects the name (too long, forbidden characters, ...).
    InvalidName,
    /// The credentials are dead: the cookie no longer buys a session token.
    Auth,
    /// MediaFire's API rate limit (163/261) answered and retries ran out.
    RateLimited,
    /// A failure that may go away: network error, 5xx, HTML challenge page.
    Transient,
    /// A failure that will not go away by retrying.
    Permanent,
    /// A local failure: spool disk full, I/O error on the state directory.
    Local,
    /// The operation was abandoned (client went away, shutdown).
    Cancelled,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::QuotaExceeded => "quota exceeded",
            ErrorKind::InvalidName => "invalid name",
            ErrorKind::Auth => "authentication failed",
            ErrorKind::RateLimited => "rate limited",
            ErrorKind::Transient => "transient failure",
            ErrorKind::Permanent => "permanent failure",
            ErrorKind::Local => "local failure",
            ErrorKind::Cancelled => "cancelled",
        }
    }
}

/// Whether trying the same call again can succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Retrying will not help.
    Permanent,
    /// Retrying may help (after a delay).
    Temporary,
    /// It was temporary, but retries ran out.
    Persistent,
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failure with its kind, retry status, MediaFire action/code and context.
pub struct Error {
    kind: ErrorKind,
    retry: Retry,
    message: Cow<'static, str>,
    action: Option<Cow<'static, str>>,
    code: Option<u32>,
    context: Vec<(&'static str, String)>,
    source: Option<Source>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error; `Transient` and `RateLimited` start out temporary, every
    /// other kind permanent.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        let retry = match kind {
            ErrorKind::Transient | ErrorKind::RateLimited => Retry::Temporary,
            _ => Retry::Permanent,
        };
        Error {
            kind,
            retry,
            message: message.into(),
            action: None,
            code: None,
            context: Vec::new(),
            source: None,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn retry(&self) -> Retry {
        self.retry
    }

    pub fn is_temporary(&self) -> bool {
        self.retry == Retry::Temporary
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn action(&self) -> Option<&str> {
        self.action.as_deref()
    }

    /// The MediaFire error code, when the failure came from an API envelope.
    pub fn code(&self) -> Option<u32> {
        self.code
    }

    pub fn context(&self, key: &str) -> Option<&str> {
        self.context
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    pub fn set_temporary(mut self) -> Self {
        self.retry = Retry::Temporary;
        self
    }

    pub fn set_permanent(mut self) -> Self {
        self.retry = Retry::Permanent;
        self
    }

    /// Marks a temporary error whose retries ran out.
    pub fn set_persistent(mut self) -> Self {
        if self.retry == Retry::Temporary {
            self.retry = Retry::Persistent;
        }
        self
    }

    pub fn with_action(mut self, action: impl Into<Cow<'static, str>>) -> Self {
        self.action = Some(action.into());
        self
    }

    pub fn with_code(mut self, code: u32) -> Self {
        self.code = Some(code);
        self
    }

    /// Adds `key=value` context. Never pass a secret here.
    pub fn with_context(mut self, key: &'static str, value: impl fmt::Display) -> Self {
        self.context.push((key, value.to_string()));
        self
    }

    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?})", self.kind.as_str(), self.retry)?;
        if let Some(action) = &self.action {
            write!(f, " at {action}")?;
        }
        if let Some(code) = self.code {
            write!(f, ", MediaFire error {code}")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if !self.context.is_empty() {
            let parts: Vec<String> = self.context.iter().map(|(k, v)| format!("{k}={v}")).collect();
            write!(f, " [{}]", parts.join(", "))?;
        }
        if let Some(source) = &self.source {
            write!(f, ", caused by: {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::new(ErrorKind::Local, "local i/o").with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_action_code_and_context() {
        let e = Error::new(ErrorKind::NotFound, "unknown folder key")
            .with_action("folder/get_content")
            .with_code(112)
            .with_context("folder_key", "abc");
        let s = e.to_string();
        assert_eq!(
            s,
            "not found (Permanent) at folder/get_content, MediaFire error 112: \
             unknown folder key [folder_key=abc]"
        );
        assert!(!s.contains('\n'));
    }

    #[test]
    fn persistent_only_from_temporary() {
        let e = Error::new(ErrorKind::Transient, "x").set_persistent();
        assert_eq!(e.retry(), Retry::Persistent);
        let e = Error::new(ErrorKind::NotFound, "x").set_persistent();
        assert_eq!(e.retry(), Retry::Permanent);
    }
}
