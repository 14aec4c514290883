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
