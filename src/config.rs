//! Settings for `serve`: flags, then environment variables, then the TOML
//! file, then defaults, resolved and validated once at start-up.
//!
//! Every option has one name used everywhere: `--cache-ttl` on the command
//! line, `MEDIAFIRE_DAV_CACHE_TTL` in the environment, `cache_ttl` in the
//! file. `config.example.toml` documents each one with its default. Secrets
//! (cookie, password) are never printed: [`Settings`] writes its `Debug` by
//! hand.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;

use crate::server::proxy::PublicUrl;

/// Command-line flags of `serve`. Each is optional so that a flag that was not
/// given falls through to the environment (clap's `env`), then to the file.
#[derive(Args, Clone, Debug, Default)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "MEDIAFIRE_DAV_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to serve WebDAV on [default: 127.0.0.1:8080].
    #[arg(long, env = "MEDIAFIRE_DAV_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// MediaFire root URL [default: https://www.mediafire.com].
    #[arg(long, env = "MEDIAFIRE_API_BASE")]
    pub api_base: Option<String>,
    /// Browser cookie of a logged-in MediaFire session (only needed until a
    /// session is saved in the state directory).
    #[arg(long, env = "MEDIAFIRE_COOKIE", hide_env_values = true)]
    pub cookie: Option<String>,
    /// User name clients must send (HTTP Basic auth).
    #[arg(long, env = "MEDIAFIRE_DAV_USER")]
    pub user: Option<String>,
    /// Password clients must send: plain text, or a bcrypt (`$2b$...`) or
    /// argon2 (`$argon2id$...`) hash.
    #[arg(long, env = "MEDIAFIRE_DAV_PASS", hide_env_values = true)]
    pub pass: Option<String>,
    /// Serve without authentication (only on a loopback address unless
    /// --allow-public-no-auth is also given).
    #[arg(long, env = "MEDIAFIRE_DAV_NO_AUTH")]
    pub no_auth: bool,
    /// Allow --no-auth on a non-loopback address.
    #[arg(long, env = "MEDIAFIRE_DAV_ALLOW_PUBLIC_NO_AUTH")]
    pub allow_public_no_auth: bool,
    /// Where the session, dead properties and local entries are kept
    /// [default: $XDG_STATE_HOME/mediafire-dav or ~/.local/state/mediafire-dav].
    #[arg(long, env = "MEDIAFIRE_DAV_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Where PUT bodies are spooled before upload [default: <state-dir>/spool].
    #[arg(long, env = "MEDIAFIRE_DAV_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,
    /// Refuse every method that changes anything (403).
    #[arg(long, env = "MEDIAFIRE_DAV_READ_ONLY")]
    pub read_only: bool,
    /// Run against a built-in MediaFire emulator with sample files; no account
    /// needed.
    #[arg(long)]
    pub demo: bool,
    /// Seconds a folder listing is trusted before it is revalidated [default: 30].
    #[arg(long, env = "MEDIAFIRE_DAV_CACHE_TTL")]
    pub cache_ttl: Option<u64>,
    /// MediaFire API calls per second, sustained [default: 10].
    #[arg(long, env = "MEDIAFIRE_DAV_CALLS_PER_SECOND")]
    pub calls_per_second: Option<f64>,
    /// MediaFire API calls allowed in a burst [default: 20].
    #[arg(long, env = "MEDIAFIRE_DAV_BURST")]
    pub burst: Option<u32>,
    /// MediaFire API calls in flight at once [default: 8].
    #[arg(long, env = "MEDIAFIRE_DAV_MAX_CONCURRENT_CALLS")]
    pub max_concurrent_calls: Option<usize>,
    /// Upload units sent in parallel per file [default: 3].
    #[arg(long, env = "MEDIAFIRE_DAV_UPLOAD_PARALLELISM")]
    pub upload_parallelism: Option<usize>,
    /// URL path prefix the server is mounted under, e.g. `/dav` behind a
    /// reverse proxy [default: none].
    #[arg(long, env = "MEDIAFIRE_DAV_PREFIX")]
    pub prefix: Option<String>,
    /// The URL clients use when a reverse proxy is in front, e.g.
    /// `https://files.example.com/dav`. Its path becomes the prefix, and
    /// MOVE/COPY destinations on it are understood [default: none].
    #[arg(long, env = "MEDIAFIRE_DAV_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Upload macOS `._*` and `.DS_Store` files to MediaFire instead of
    /// keeping them in the local overlay.
    #[arg(long, env = "MEDIAFIRE_DAV_UPLOAD_APPLE_FILES")]
    pub upload_apple_files: bool,
}

/// The `[serve]` settings as they may appear in the TOML file.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    api_base: Option<String>,
    cookie: Option<String>,
    user: Option<String>,
    pass: Option<String>,
    no_auth: Option<bool>,
    allow_public_no_auth: Option<bool>,
    state_dir: Option<PathBuf>,
    spool_dir: Option<PathBuf>,
    read_only: Option<bool>,
    cache_ttl: Option<u64>,
    calls_per_second: Option<f64>,
    burst: Option<u32>,
    max_concurrent_calls: Option<usize>,
    upload_parallelism: Option<usize>,
    prefix: Option<String>,
    public_url: Option<String>,
    upload_apple_files: Option<bool>,
}

/// Basic-auth credentials clients must present.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    /// Plain text or a bcrypt/argon2 hash.
    pub pass: String,
}

/// Fully resolved, validated settings for `serve`.
#[derive(Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub api_base: String,
    pub cookie: Option<String>,
    pub credentials: Option<Credentials>,
    pub state_dir: PathBuf,
    pub spool_dir: PathBuf,
    pub read_only: bool,
    pub demo: bool,
    pub cache_ttl: Duration,
    pub calls_per_second: f64,
    pub burst: u32,
    pub max_concurrent_calls: usize,
    pub upload_parallelism: usize,
    pub prefix: String,
    pub public_url: Option<PublicUrl>,
    pub local_apple_files: bool,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("api_base", &self.api_base)
            .field("cookie", &self.cookie.as_ref().map(|_| "<set>"))
            .field("user", &self.credentials.as_ref().map(|c| c.user.as_str()))
            .field("state_dir", &self.state_dir)
            .field("spool_dir", &self.spool_dir)
            .field("read_only", &self.read_only)
            .field("demo", &self.demo)
            .field("cache_ttl", &self.cache_ttl)
            .field("calls_per_second", &self.calls_per_second)
            .field("burst", &self.burst)
            .field("max_concurrent_calls", &self.max_concurrent_calls)
            .field("upload_parallelism", &self.upload_parallelism)
            .field("prefix", &self.prefix)
            .field("public_url", &self.public_url.as_ref().map(|p| p.as_base()))
            .field("local_apple_files", &self.local_apple_files)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Resolves flags (with their environment fallbacks) over the file named
    /// by `--config`, then defaults, and validates the result.
    pub fn resolve(args: &ServeArgs) -> anyhow::Result<Settings> {
        let file = match &args.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        let state_dir = args
            .state_dir
            .clone()
            .or(file.state_dir)
            .unwrap_or_else(default_state_dir);
        let spool_dir = args
            .spool_dir
            .clone()
            .or(file.spool_dir)
            .unwrap_or_else(|| state_dir.join("spool"));
        let no_auth = args.no_auth || file.no_auth.unwrap_or(false);
        let user = args.user.clone().or(file.user);
        let pass = args.pass.clone().or(file.pass);
        let credentials = match (user, pass) {
            (Some(user), Some(pass)) => Some(Credentials { user, pass }),
            (None, None) => None,
            _ => bail!("config: `user` and `pass` must be given together"),
        };
        let public_url = args
            .public_url
            .clone()
            .or(file.public_url)
            .filter(|u| !u.trim().is_empty())
            .map(|u| PublicUrl::parse(&u))
            .transpose()?;
        let settings = Settings {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| "127.0.0.1:8080".parse().expect("valid address")),
            api_base: args
                .api_base
                .clone()
                .or(file.api_base)
                .unwrap_or_else(|| "https://www.mediafire.com".to_string()),
            cookie: args
                .cookie
                .clone()
                .or(file.cookie)
                .filter(|c| !c.trim().is_empty()),
            credentials,
            state_dir,
            spool_dir,
            read_only: args.read_only || file.read_only.unwrap_or(false),
            demo: args.demo,
            cache_ttl: Duration::from_secs(args.cache_ttl.or(file.cache_ttl).unwrap_or(30)),
            calls_per_second: args
                .calls_per_second
                .or(file.calls_per_second)
                .unwrap_or(10.0),
            burst: args.burst.or(file.burst).unwrap_or(20),
            max_concurrent_calls: args
                .max_concurrent_calls
                .or(file.max_concurrent_calls)
                .unwrap_or(8),
            upload_parallelism: args
                .upload_parallelism
                .or(file.upload_parallelism)
                .unwrap_or(3),
            prefix: resolve_prefix(args.prefix.clone().or(file.prefix), public_url.as_ref())?,
            public_url,
            local_apple_files: !(args.upload_apple_files
                || file.upload_apple_files.unwrap_or(false)),
        };
        let allow_public = args.allow_public_no_auth || file.allow_public_no_auth.unwrap_or(false);
        settings.validate(no_auth, allow_public)?;
        Ok(settings)
    }

    fn validate(&self, no_auth: bool, allow_public_no_auth: bool) -> anyhow::Result<()> {
        if self.credentials.is_none() && !no_auth && !self.demo {
            bail!(
                "config: `user` and `pass` must be set (--user/--pass or MEDIAFIRE_DAV_USER/\
                 MEDIAFIRE_DAV_PASS), or authentication turned off with --no-auth"
            );
        }
        if self.credentials.is_some() && no_auth {
            bail!("config: --no-auth conflicts with `user`/`pass`; give one or the other");
        }
        if no_auth && !self.listen.ip().is_loopback() && !allow_public_no_auth {
            bail!(
                "config: refusing to serve {} without authentication (not a loopback address; \
                 add --allow-public-no-auth if you really mean it)",
                self.listen
            );
        }
        if let Some(c) = &self.credentials {
            if c.user.is_empty() || c.user.contains(':') {
                bail!("config: `user` must be non-empty and contain no ':'");
            }
            if c.pass.is_empty() {
                bail!("config: `pass` must not be empty");
            }
        }
        if !(self.calls_per_second > 0.0 && self.calls_per_second.is_finite()) {
            bail!("config: `calls_per_second` must be a positive number");
        }
        if self.burst == 0 || self.max_concurrent_calls == 0 || self.upload_parallelism == 0 {
            bail!(
                "config: `burst`, `max_concurrent_calls` and `upload_parallelism` must be at least 1"
            );
        }
        if !self.api_base.starts_with("http://") && !self.api_base.starts_with("https://") {
            bail!("config: `api_base` must be an http:// or https:// URL");
        }
        Ok(())
    }
}

fn load_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("config: reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config: parsing {}", path.display()))
}

fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("mediafire-dav");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".local/state/mediafire-dav");
    }
    PathBuf::from("mediafire-dav-state")
}

/// The prefix: the one given, else the public URL's path. Both given must
/// agree, because the proxy has to pass the path through unchanged (the
/// hrefs in answers are built from the prefix).
fn resolve_prefix(given: Option<String>, public: Option<&PublicUrl>) -> anyhow::Result<String> {
    let from_url = public.map(|p| normalize_prefix(p.prefix()));
    match (given.map(normalize_prefix), from_url) {
        (Some(p), Some(u)) if p != u => bail!(
            "config: `prefix` ({p:?}) differs from the path of `public_url` ({u:?}); the \
             proxy must forward the public path unchanged, so give only `public_url`"
        ),
        (Some(p), _) => Ok(p),
        (None, Some(u)) => Ok(u),
        (None, None) => Ok(String::new()),
    }
}

/// `dav` → `/dav`, `/dav/` → `/dav`, `/` → ``.
fn normalize_prefix(prefix: String) -> String {
    let trimmed = prefix.trim().trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServeArgs {
        ServeArgs {
            user: Some("u".into()),
            pass: Some("p".into()),
            state_dir: Some("/tmp/x".into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_apply_when_nothing_is_given() {
        let s = Settings::resolve(&args()).unwrap();
        assert_eq!(s.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s.api_base, "https://www.mediafire.com");
        assert_eq!(s.cache_ttl, Duration::from_secs(30));
        assert_eq!(s.spool_dir, PathBuf::from("/tmp/x/spool"));
        assert!(s.local_apple_files);
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "cache_ttl = 99\nburst = 3\nprefix = \"dav/\"\n").unwrap();
        let mut a = args();
        a.config = Some(path);
        a.burst = Some(7);
        let s = Settings::resolve(&a).unwrap();
        assert_eq!(s.cache_ttl, Duration::from_secs(99));
        assert_eq!(s.burst, 7);
        assert_eq!(s.prefix, "/dav");
    }

    #[test]
    fn the_example_file_parses_and_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
        let mut a = args();
        a.config = Some(path);
        let from_example = Settings::resolve(&a).unwrap();
        let defaults = Settings::resolve(&args()).unwrap();
        assert_eq!(format!("{from_example:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "cache_tll = 99\n").unwrap();
        let mut a = args();
        a.config = Some(path);
        let err = format!("{:#}", Settings::resolve(&a).unwrap_err());
        assert!(err.contains("cache_tll"), "{err}");
    }

    #[test]
    fn auth_is_required_unless_turned_off() {
        let a = ServeArgs {
            state_dir: Some("/tmp/x".into()),
            ..Default::default()
        };
        let err = Settings::resolve(&a).unwrap_err().to_string();
        assert!(err.contains("--no-auth"), "{err}");
        let a = ServeArgs { no_auth: true, ..a };
        assert!(Settings::resolve(&a).is_ok());
    }

    #[test]
    fn public_url_sets_the_prefix_and_must_agree_with_it() {
        let mut a = args();
        a.public_url = Some("https://files.example.com/dav/".into());
        let s = Settings::resolve(&a).unwrap();
        assert_eq!(s.prefix, "/dav");
        assert_eq!(
            s.public_url.unwrap().as_base(),
            "https://files.example.com/dav/"
        );
        a.prefix = Some("dav".into());
        assert!(Settings::resolve(&a).is_ok());
        a.prefix = Some("/other".into());
        let err = Settings::resolve(&a).unwrap_err().to_string();
        assert!(err.contains("public_url"), "{err}");
        a.prefix = None;
        a.public_url = Some("ftp://files.example.com/".into());
        assert!(Settings::resolve(&a).is_err());
    }

    #[test]
    fn no_auth_on_a_public_address_needs_the_extra_flag() {
        let a = ServeArgs {
            no_auth: true,
            listen: Some("0.0.0.0:8080".parse().unwrap()),
            state_dir: Some("/tmp/x".into()),
            ..Default::default()
        };
        assert!(Settings::resolve(&a).is_err());
        let a = ServeArgs {
            allow_public_no_auth: true,
            ..a
        };
        assert!(Settings::resolve(&a).is_ok());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let mut a = args();
        a.cookie = Some("SECRETCOOKIE".into());
        a.pass = Some("SECRETPASS".into());
        let s = Settings::resolve(&a).unwrap();
        let d = format!("{s:?}");
        assert!(
            !d.contains("SECRETCOOKIE") && !d.contains("SECRETPASS"),
            "{d}"
        );
    }
}
