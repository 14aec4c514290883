//! Integration tests: the real server and the built-in emulator on loopback
//! ports, driven over HTTP like a client would.

// Shared start-up and request helpers.
mod util;

// Every WebDAV method, including the error paths.
mod dav_methods;

// litmus and rclone as oracles.
mod clients;

// The binary's subcommands: check, serve --demo, healthcheck.
mod cli;

// Exact inputs that once broke the server, found by probing it from outside.
mod regressions;
