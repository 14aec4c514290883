//! The MediaFire API emulator (placeholder).
