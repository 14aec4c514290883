//! The MediaFire web API client (placeholder).
