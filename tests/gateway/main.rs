//! Integration tests: the real server and the built-in emulator on loopback
//! ports, driven over HTTP like a client would.

// Shared start-up and request helpers.
mod util;

// Every WebDAV method, including the error paths.
mod dav_methods;

// litmus and rclone as oracles.
mod clients;

// API calls per request: cache, change detection, links, rate limits.
mod economy;

// The README's table of API calls per WebDAV request, measured.
mod api_calls_table;
