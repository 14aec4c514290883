//! Wire types: serde structs that mirror MediaFire's JSON replies.
//!
//! Each struct is the `response` object (or a part of it) of the endpoints
//! named in its doc line. MediaFire sends numbers as strings almost
//! everywhere, flags as `"yes"`/`"no"`, and a few fields as either a number or
//! a string depending on the endpoint and year (spec "Read first" §1–2), so
//! every such field goes through one of the lenient deserializers in [`de`].
//! Unknown fields are ignored; missing optional fields take their defaults.
//! No logic lives here: turning these into [`crate::remote`] types happens in
//! the client.

use serde::Deserialize;
use serde_json::Value;

/// Lenient deserializers for MediaFire's string-or-number and yes/no fields.
pub mod de {
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    /// Parses a number, a numeric string or (for a fraction such as "4.7")
    /// its integer part. `None` for null, empty or non-numeric values.
    pub fn value_to_i64(v: &Value) -> Option<i64> {
        match v {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
            Value::String(s) => {
                let s = s.trim();
                s.parse::<i64>()
                    .ok()
                    .or_else(|| s.split('.').next().and_then(|i| i.parse::<i64>().ok()))
            }
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// A `u64` from a number or numeric string; null, "" and garbage give 0.
    pub fn u64_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(value_to_i64(&v).map(|n| n.max(0) as u64).unwrap_or(0))
    }

    /// An optional `u64` from a number or numeric string.
    pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(value_to_i64(&v).map(|n| n.max(0) as u64))
    }

    /// An `i64` from a number or numeric string; null and "" give 0.
    pub fn i64_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(value_to_i64(&v).unwrap_or(0))
    }

    /// A string from a string or a number; null gives "".
    pub fn string_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(match v {
            Value::String(s) => s,
            Value::Null => String::new(),
            other => other.to_string(),
        })
    }

    /// An optional non-empty string from a string or a number.
    pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let s = string_lenient(d)?;
        Ok(if s.is_empty() { None } else { Some(s) })
    }

    /// `Some(flag)` for a yes/no value, `None` when absent, null or empty.
    pub fn opt_yes_no<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(match &v {
            Value::Null => None,
            Value::String(s) if s.trim().is_empty() => None,
            other => Some(flag(other)),
        })
    }

    /// `"yes"`/`"no"` (also `true`/`false`, `1`/`0`); anything else is false.
    pub fn yes_no<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        Ok(flag(&Value::deserialize(d)?))
    }

    fn flag(v: &Value) -> bool {
        match v {
            Value::String(s) => {
                matches!(s.trim().to_ascii_lowercase().as_str(), "yes" | "true" | "1")
            }
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_i64() == Some(1),
            _ => false,
        }
    }
}

/// `response` of `/application/get_session_token.php`, `user/get_session_token`
/// and `user/renew_session_token` (spec §1.2, §1.4): only the token is read.
#[derive(Clone, Deserialize)]
pub struct SessionTokenResponse {
    #[serde(default, deserialize_with = "de::string_lenient")]
    pub session_token: String,
}

impl std::fmt::Debug for SessionTokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTokenResponse")
            .finish_non_exhaustive()
    }
}

/// `response` of `user/get_action_token` (spec §1.5).
#[derive(Clone, Deserialize)]
pub struct ActionTokenResponse {
    #[serde(default, deserialize_with = "de::string_lenient")]
    pub action_token: String,
}

impl std::fmt::Debug for ActionTokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionTokenResponse")
            .finish_non_exhaustive()
    }
}

/// A reply whose only interesting part is the envelope: `contact/fetch` and
/// any call the client makes for its side effect alone.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Ack {}

/// `response` of `folder/get_content` (spec §3.1).
#[derive(Clone, Debug, Deserialize)]
pub struct FolderContentResponse {
    pub folder_content: FolderContent,
}

/// One chunk of a folder listing (`folder/get_content`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct FolderContent {
    #[serde(default, deserialize_with = "de::u64_lenient")]
    pub chunk_number: u64,
    #[serde(default, deserialize_with = "de::yes_no")]
    pub more_chunks: bool,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub folderkey: Option<String>,
    #[serde(default, deserialize_with = "de::u64_lenient")]
    pub revision: u64,
    /// Missing and `null` both mean "no folders in this chunk" (spec "Read first" §3).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub folders: Vec<FolderEntry>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub files: Vec<FileEntry>,
}

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A folder in `folder/get_content` (folders) and `folder/get_info`.
#[derive(Clone, Debug, Deserialize)]
pub struct FolderEntry {
    #[serde(default, deserialize_with = "de::string_lenient")]
    pub folderkey: String,
    #[serde(default, deserialize_with = "de::string_lenient")]
    pub name: String,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub created_utc: Option<String>,
    #[serde(default, deserialize_with = "de::u64_lenient")]
    pub revision: u64,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub parent_folderkey: Option<String>,
    #[serde(default, deserialize_with = "de::u64_lenient")]
    pub file_count: u64,
    #[serde(default, deserialize_with = "de::u64_lenient")]
    pub folder_count: u64,
}

/// A file in `folder/get_content` (files) and `file/get_info`.
#[derive(Clone, Debug, Deserialize)]
pub struct FileEntry {
    #[serde(default, deserialize_with = "de::string_lenient")]
    pub quickkey: String,
    #[serde(default, deserialize_with = "de::string_lenient")]
    pub filename: String,
    #[serde(default, deserialize_with = "de::u64_lenient")]
    pub size: u64,
    #[serde(default, deserialize_with = "de::string_lenient")]
    pub hash: String,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub created_utc: Option<String>,
    #[serde(default, deserialize_with = "de::u64_lenient")]
    pub revision: u64,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub parent_folderkey: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub mimetype: Option<String>,
}

/// `response` of `folder/get_info` (spec §3.2).
#[derive(Clone, Debug, Deserialize)]
pub struct FolderInfoResponse {
    pub folder_info: FolderEntry,
}

/// `response` of `file/get_info` (spec §3.8).
#[derive(Clone, Debug, Deserialize)]
pub struct FileInfoResponse {
    pub file_info: FileEntry,
}

/// `response` of `folder/create` (spec §3.3). The key is `folder_key` in 1.5
/// (with an underscore); older replies say `folderkey`.
#[derive(Clone, Debug, Deserialize)]
pub struct FolderCreateResponse {
    #[serde(default, deserialize_with = "de::opt_string")]
    pub folder_key: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub folderkey: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub created_utc: Option<String>,
    #[serde(default, deserialize_with = "de::u64_lenient")]
    pub revision: u64,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub new_device_revision: Option<u64>,
}

/// `response` of the mutations `folder/update`, `folder/move`,
/// `folder/delete`, `file/update`, `file/move`, `file/delete` (spec §3.4–3.13).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MutationResponse {
    #[serde(default, deserialize_with = "de::yes_no")]
    pub asynchronous: bool,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub new_device_revision: Option<u64>,
    /// Collision renames on move; its shape is unknown (spec §8.6), kept raw.
    #[serde(default)]
    pub new_names: Option<Value>,
}

/// `response` of `file/copy` (spec §3.12). `new_quickkeys` is an array in
/// AL/CPP and a comma string (`new_quickkey`) in SAKYA; both are accepted.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct FileCopyResponse {
    #[serde(default)]
    pub new_quickkeys: Option<Value>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub new_quickkey: Option<String>,
    #[serde(default, deserialize_with = "de::u64_lenient")]
    pub skipped_count: u64,
    #[serde(default, deserialize_with = "de::u64_lenient")]
    pub other_count: u64,
    #[serde(default, deserialize_with = "de::yes_no")]
    pub asynchronous: bool,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub new_device_revision: Option<u64>,
}

/// `response` of `file/get_links` (spec §3.9).
#[derive(Clone, Debug, Deserialize)]
pub struct LinksResponse {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub links: Vec<LinkEntry>,
}

/// One entry of `file/get_links`. An entry can fail on its own while the
/// envelope says Success: `error` (a plain string) or `direct_download_error`.
#[derive(Clone, Debug, Deserialize)]
pub struct LinkEntry {
    #[serde(default, deserialize_with = "de::string_lenient")]
    pub quickkey: String,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub direct_download: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub normal_download: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub error: Option<String>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub direct_download_error: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub direct_download_error_message: Option<String>,
}

/// `response` of `user/get_info` (spec §3.14).
#[derive(Clone, Debug, Deserialize)]
pub struct UserInfoResponse {
    pub user_info: UserInfo,
}

/// The account part of `user/get_info`.
#[derive(Clone, Debug, Deserialize)]
pub struct UserInfo {
    #[serde(default, deserialize_with = "de::string_lenient")]
    pub email: String,
    #[serde(default, deserialize_with = "de::string_lenient")]
    pub display_name: String,
    #[serde(default, deserialize_with = "de::string_lenient")]
    pub first_name: String,
    #[serde(default, deserialize_with = "de::string_lenient")]
    pub last_name: String,
    #[serde(default, deserialize_with = "de::yes_no")]
    pub premium: bool,
    #[serde(default, deserialize_with = "de::u64_lenient")]
    pub used_storage_size: u64,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub storage_limit: Option<u64>,
    #[serde(default, deserialize_with = "de::yes_no")]
    pub storage_limit_exceeded: bool,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub max_upload_size: Option<u64>,
}

/// `response` of `device/get_status` (spec §2.4).
#[derive(Clone, Debug, Deserialize)]
pub struct DeviceStatusResponse {
    #[serde(default, deserialize_with = "de::u64_lenient")]
    pub device_revision: u64,
    #[serde(default, deserialize_with = "de::yes_no")]
    pub async_jobs_in_progress: bool,
}

/// `response` of `device/get_changes` (spec §3.16): what changed since a
/// revision. Entries are kept raw; the client only counts them today.
#[derive(Clone, Debug, Deserialize)]
pub struct DeviceChangesResponse {
    #[serde(default, deserialize_with = "de::u64_lenient")]
    pub device_revision: u64,
    #[serde(default, deserialize_with = "de::u64_lenient")]
    pub changes_list_block: u64,
    #[serde(default)]
    pub updated: ChangeLists,
    #[serde(default)]
    pub deleted: ChangeLists,
}

/// The `updated` / `deleted` halves of `device/get_changes`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ChangeLists {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub files: Vec<Value>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub folders: Vec<Value>,
}

/// `response` of `system/get_limits` (spec §3.16).
#[derive(Clone, Debug, Deserialize)]
pub struct SystemLimitsResponse {
    pub limits: SystemLimits,
}

/// Service-wide limits from `system/get_limits`.
#[derive(Clone, Debug, Deserialize)]
pub struct SystemLimits {
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub max_objects: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub max_keys: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub folder_content_chunk_size: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub folder_depth_limit: Option<u64>,
}

/// `response` of `upload/check` (spec §4.3).
#[derive(Clone, Debug, Deserialize)]
pub struct UploadCheckResponse {
    #[serde(default, deserialize_with = "de::yes_no")]
    pub hash_exists: bool,
    #[serde(default, deserialize_with = "de::yes_no")]
    pub in_account: bool,
    #[serde(default, deserialize_with = "de::yes_no")]
    pub in_folder: bool,
    #[serde(default, deserialize_with = "de::yes_no")]
    pub file_exists: bool,
    /// Only sent when `file_exists` is yes; `None` when absent.
    #[serde(default, deserialize_with = "de::opt_yes_no")]
    pub different_hash: Option<bool>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub duplicate_quickkey: Option<String>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub available_space: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub used_storage_size: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub storage_limit: Option<u64>,
    #[serde(default, deserialize_with = "de::yes_no")]
    pub storage_limit_exceeded: bool,
    #[serde(default)]
    pub resumable_upload: Option<ResumableState>,
}

/// The server's view of a resumable upload: unit layout and received units
/// (`upload/check`, `upload/resumable`, spec §4.4).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ResumableState {
    #[serde(default, deserialize_with = "de::yes_no")]
    pub all_units_ready: bool,
    #[serde(default, deserialize_with = "de::u64_lenient")]
    pub number_of_units: u64,
    #[serde(default, deserialize_with = "de::u64_lenient")]
    pub unit_size: u64,
    #[serde(default)]
    pub bitmap: Option<Bitmap>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub upload_key: Option<String>,
}

/// Received-units bitmap: unit `u` is in iff bit `u % 16` of `words[u / 16]`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Bitmap {
    #[serde(default, deserialize_with = "de::u64_lenient")]
    pub count: u64,
    #[serde(default, deserialize_with = "lenient_u64_vec")]
    pub words: Vec<u64>,
}

fn lenient_u64_vec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    let v = Option::<Vec<Value>>::deserialize(d)?.unwrap_or_default();
    Ok(v.iter()
        .map(|w| de::value_to_i64(w).map(|n| n.max(0) as u64).unwrap_or(0))
        .collect())
}

/// `response` of `upload/instant` (spec §4.6). `device_revision` is a number
/// in one capture and a string in another; `new_device_revision` is in none.
#[derive(Clone, Debug, Deserialize)]
pub struct UploadInstantResponse {
    #[serde(default, deserialize_with = "de::string_lenient")]
    pub quickkey: String,
    #[serde(default, deserialize_with = "de::string_lenient")]
    pub filename: String,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub device_revision: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub new_device_revision: Option<u64>,
    #[serde(default)]
    pub newrevision: Option<Revision>,
}

/// `newrevision` / `newfolderrevision` of `upload/instant`; the revision may
/// be fractional ("4.7"), so only its integer part is kept.
#[derive(Clone, Debug, Deserialize)]
pub struct Revision {
    #[serde(default, deserialize_with = "de::u64_lenient")]
    pub revision: u64,
    #[serde(default, deserialize_with = "de::u64_lenient")]
    pub epoch: u64,
}

/// `response` of `upload/resumable` and `upload/simple` (spec §4.5, §4.6).
#[derive(Clone, Debug, Deserialize)]
pub struct UploadUnitResponse {
    #[serde(default)]
    pub doupload: DoUploadAck,
    #[serde(default)]
    pub resumable_upload: Option<ResumableState>,
}

/// `doupload` of a unit/simple upload: `result` 0 = accepted, `key` to poll.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct DoUploadAck {
    #[serde(default, deserialize_with = "de::i64_lenient")]
    pub result: i64,
    #[serde(default, deserialize_with = "de::string_lenient")]
    pub key: String,
}

/// `response` of `upload/poll_upload` (spec §4.7).
#[derive(Clone, Debug, Deserialize)]
pub struct PollUploadResponse {
    pub doupload: PollState,
}

/// `doupload` of `upload/poll_upload`. Before completion any key may be
/// present with an empty value (spec "Read first" §6).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PollState {
    #[serde(default, deserialize_with = "de::i64_lenient")]
    pub result: i64,
    #[serde(default, deserialize_with = "de::i64_lenient")]
    pub status: i64,
    #[serde(default, deserialize_with = "de::string_lenient")]
    pub description: String,
    /// Empty, or a code as a string or number (spec §4.7 list).
    #[serde(default, deserialize_with = "de::string_lenient")]
    pub fileerror: String,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub quickkey: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub hash: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub filename: Option<String>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub size: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub created_utc: Option<String>,
    #[serde(default, deserialize_with = "de::u64_lenient")]
    pub revision: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_numbers_and_flags() {
        let s: ResumableState = serde_json::from_str(
            r#"{"all_units_ready":"yes","number_of_units":21,"unit_size":"4194304",
                "bitmap":{"count":"2","words":["3",65535,null,"x"]},"upload_key":""}"#,
        )
        .unwrap();
        assert!(s.all_units_ready);
        assert_eq!((s.number_of_units, s.unit_size), (21, 4194304));
        assert_eq!(s.bitmap.unwrap().words, [3, 65535, 0, 0]);
        assert_eq!(s.upload_key, None, "empty strings are absent");

        let p: PollState =
            serde_json::from_str(r#"{"result":"-80","status":99,"fileerror":15,"revision":"4.7"}"#)
                .unwrap();
        assert_eq!(
            (p.result, p.status, p.fileerror.as_str(), p.revision),
            (-80, 99, "15", 4)
        );
    }

    #[test]
    fn null_and_missing_lists_are_empty() {
        let c: FolderContent =
            serde_json::from_str(r#"{"files":null,"more_chunks":"no"}"#).unwrap();
        assert!(c.files.is_empty() && c.folders.is_empty() && !c.more_chunks);
    }
}
