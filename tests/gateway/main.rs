//! Integration tests: the real server and the built-in emulator on loopback
//! ports, driven over HTTP like a client would.

// Shared start-up and request helpers.
mod util;

// Every WebDAV method, including the error paths.
mod dav_methods;

// litmus and rclone as oracles.
mod clients;

// Finder, Explorer, davfs2 and rclone request sequences, replayed.
mod client_sequences;

// /metrics through a strict Prometheus text-format parser.
mod metrics;

// The HTML folder listing, as text and in headless Chromium.
mod browser;

// The binary's subcommands: check, serve --demo, healthcheck.
mod cli;

// Each emulator fault switch on its own: reads retried, writes complete or fail clearly.
mod faults;

// Hostile and malformed requests: one row per case, never a 5xx or a panic.
mod bad_input;

// The real binary as child processes (emulator and server), output captured.
mod child;

// No cookie, token or password in a debug log or an error page.
mod secrets;

// kill -9 mid-upload, restart: nothing partial, the retry resumes.
mod crash;

// 8 clients, 10% faults, token expiry every 5 s; MediaFire matches the model.
mod soak;

// Property test: generated paths, headers and XML never crash or answer 500.
mod fuzz;

// API calls per request: cache, change detection, links, rate limits.
mod economy;

// The README's table of API calls per WebDAV request, measured.
mod api_calls_table;

// Uploads at scale: spool, units, resume, instant, overwrite, short bodies.
mod uploads;

// Exact inputs that once broke the server, found by probing it from outside.
mod regressions;
