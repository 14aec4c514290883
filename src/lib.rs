//! mediafire-dav: a WebDAV server that mounts a MediaFire account.
//!
//! # Layout
//!
//! - [`app`]: wires the layers together for `serve` (and for tests).
//! - [`cli`]: the `check` and `healthcheck` subcommands.
//! - [`config`]: settings from a TOML file, the environment and flags.
//! - [`server`]: the hyper service in front of everything: Basic auth,
//!   `/healthz`, `/metrics`, one log line per request, graceful shutdown.
//! - [`dav`]: the dav-server `DavFileSystem` over a [`remote::Remote`]: path
//!   cache, overlay for what MediaFire cannot store, spooled uploads.
//! - [`remote`]: the seam: typed storage calls and their data types.
//! - [`error`]: the one error type that crosses the seam.
//! - [`mediafire`]: the MediaFire web API client (session, transport,
//!   uploads, downloads). Knows nothing of WebDAV.
//! - [`emulator`]: a MediaFire API emulator served over real HTTP, used by
//!   the tests and by `serve --demo`. Shares no code with [`mediafire`].

pub mod app;
pub mod cli;
pub mod config;
pub mod dav;
pub mod emulator;
pub mod error;
pub mod mediafire;
pub mod remote;
pub mod server;
