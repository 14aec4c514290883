//! The WebDAV adapter (placeholder).
