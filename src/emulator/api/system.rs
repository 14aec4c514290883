//! `device/get_status` (§2.4) and `system/get_limits` (§3.16).

use std::time::Instant;

use serde_json::json;

use super::{ApiError, Fields, fields};
use crate::emulator::state::{Emulator, MAX_DEPTH, lock};

/// `device/get_status` (§2.4).
pub(crate) fn device_get_status(emu: &Emulator) -> Result<Fields, ApiError> {
    let state = lock(&emu.state);
    let busy = state.async_until.is_some_and(|t| Instant::now() < t);
    Ok(fields(json!({
        "device_revision": state.tree.device_revision.to_string(),
        "async_jobs_in_progress": if busy { "yes" } else { "no" },
    })))
}

/// `system/get_limits` (§3.16, recorded values).
pub(crate) fn system_get_limits() -> Result<Fields, ApiError> {
    Ok(fields(json!({"limits": {
        "max_objects": "6000",
        "max_keys": "500",
        "max_image_size": "26214400",
        "zip_max_filesize": "314572800",
        "zip_max_total_filesize": "2147483647",
        "folder_content_chunk_size": "100",
        "folder_depth_limit": MAX_DEPTH.to_string(),
        "limit_search_results": "100",
        "daily_shares_limit": "100",
        "device_changes_list_limit": "500",
        "total_folder_items_limit": "100",
    }})))
}
