//! MediaFire's numeric error codes, classified once.
//!
//! [`classify`] turns an envelope `error` code (spec §2.5) into an
//! [`ErrorKind`] and a [`Retry`]; [`classify_fileerror`] and
//! [`classify_upload_result`] do the same for the upload-specific codes of
//! `upload/poll_upload` and `doupload.result` (spec §4.7). Nothing here
//! retries or renews: the session manager reacts to [`is_session_expired`]
//! and `retry.rs` to the `Retry` value.

use crate::error::{ErrorKind, Retry};

/// 104/105 (and 127, the v2 signature twin): the token is bad, renew it.
pub fn is_session_expired(code: u32) -> bool {
    matches!(code, 104 | 105 | 127)
}

/// 163/261: MediaFire's rate limiter answered.
pub fn is_rate_limited(code: u32) -> bool {
    matches!(code, 163 | 261)
}

/// Codes whose answer proves the server did not act on the request, so even
/// a non-idempotent call may be sent again.
pub fn proves_not_acted(code: u32) -> bool {
    matches!(code, 104 | 105 | 127 | 163 | 208 | 261)
}

/// The kind and retry class of an envelope error code.
pub fn classify(code: u32) -> (ErrorKind, Retry) {
    use ErrorKind::*;
    use Retry::{Permanent as Perm, Temporary as Temp};
    match code {
        // > Internal server error
        // Also answered for deletes that did succeed (spec §3.7): worth one
        // more try, but only idempotent calls retry it (retry.rs decides).
        100 => (Transient, Temp),
        // > User error
        101 => (Permanent, Perm),
        // > API key missing / invalid
        // Cookie sessions carry no API key; seeing this means a wrong endpoint.
        102 | 103 => (Permanent, Perm),
        // > Session Token is missing
        // The session manager fetches a token and re-issues the call once.
        104 => (Auth, Perm),
        // > The supplied Session Token is expired or invalid
        // Same: renewed by the session manager, never by the retry loop.
        105 => (Auth, Perm),
        // > You cannot change the file extension by changing the file name
        106 => (InvalidName, Perm),
        // > The Credentials you entered are invalid
        // The cookie (or login) is dead; only the user can fix it.
        107 => (Auth, Perm),
        // > Unknown or invalid user
        108 => (Auth, Perm),
        // > Unknown or invalid Application ID
        109 => (Permanent, Perm),
        // > Unknown or Invalid QuickKey
        110 => (NotFound, Perm),
        // > Quick Key is missing
        // Also what a folder key passed as a quickkey gets (spec "Read first" §5).
        111 => (NotFound, Perm),
        // > Unknown or invalid FolderKey
        112 => (NotFound, Perm),
        // > Folder Key is missing
        113 => (NotFound, Perm),
        // > Access denied
        114 => (Forbidden, Perm),
        // > Cannot move/copy a Folder to itself or to one of its Sub-Folders
        115 => (Forbidden, Perm),
        // > The date specified is not valid
        116 => (Permanent, Perm),
        // > Folder Name is missing
        117 => (InvalidName, Perm),
        // > The File Name specified is invalid
        118 => (InvalidName, Perm),
        // > API version missing / too old / call deprecated
        124..=126 => (Permanent, Perm),
        // > The signature you specified is invalid
        // Only v2 tokens are signed; treated like an expired token (spec §1.4).
        127 => (Auth, Perm),
        // > Required parameters for this request are missing
        128 => (Permanent, Perm),
        // > One or more parameters for this request are invalid
        129 => (Permanent, Perm),
        // > Non premium account limitation reached
        130 => (QuotaExceeded, Perm),
        // > Unsupported or invalid file type
        142 => (Forbidden, Perm),
        // > This file already exists / This file exists already
        143 | 158 => (AlreadyExists, Perm),
        // > This folder already exists / This folder exists already
        144 | 159 => (AlreadyExists, Perm),
        // > ToS acceptance token invalid / You must accept the latest Terms of Service
        // The user has to log in to the web site once; nothing we can retry.
        160 | 161 => (Auth, Perm),
        // > The file(s)/folder(s) you upload/copy exceed your total storage limit
        162 => (QuotaExceeded, Perm),
        // > You have reached the limit accessing the API. Please try again later.
        // Rate limit: back off globally (limiter) and try again.
        163 => (RateLimited, Temp),
        // > Maximum depth of folder reached
        167 => (Forbidden, Perm),
        // > Upload Failed
        // No reason given; a fresh attempt of the upload step may work.
        169 => (Transient, Temp),
        // > Must be a premium user to use this function
        173 => (Forbidden, Perm),
        // > The Upload Key specified is invalid
        175 => (NotFound, Perm),
        // > Cannot insert a duplicate entry
        177 => (AlreadyExists, Perm),
        // > The specified Folder Name is invalid
        185 => (InvalidName, Perm),
        // > Total number of files copied cannot exceed MAX_OBJECTS
        207 => (QuotaExceeded, Perm),
        // > Another Asynchronous Operation is in progress. Please Retry later.
        // The server did not act; it asks for a retry in so many words.
        208 => (Transient, Temp),
        // > This folder has already been deleted
        209 => (NotFound, Perm),
        // > This file has already been deleted
        210 => (NotFound, Perm),
        // > Items in the Trash Can cannot be modified
        // A trashed item is gone from the account's point of view (listings
        // no longer show it), like 209/210; callers re-list on NotFound.
        211 => (NotFound, Perm),
        // > The specified FileDrop Key is invalid
        214 => (NotFound, Perm),
        // > The call signature is missing
        215 => (Auth, Perm),
        // > This file has not changed; no need to update
        238 => (Permanent, Perm),
        // > The folder trying to be deleted has over 1000 files
        242 => (Forbidden, Perm),
        // > This account is temporarily locked. Please, try again later.
        // "Later" means hours, not seconds: the user must look at the account.
        243 => (Auth, Perm),
        // > Unknown or invalid API method
        253 => (Permanent, Perm),
        // > Folder path not found
        259 => (NotFound, Perm),
        // > File path not found
        260 => (NotFound, Perm),
        // > Maximum number of allowed calls for this resource is reached
        // Per-resource rate limit: back off like 163.
        261 => (RateLimited, Temp),
        // > Hash is missing / Unknown or invalid Hash
        264 | 265 => (Permanent, Perm),
        // > File too big
        282 => (QuotaExceeded, Perm),
        // > The SHA256 hash of the chunk (x-unit-hash) does not match ...
        // The unit got damaged on the way; sending it again is the cure.
        304 => (Transient, Temp),
        // Codes we do not know: assume the request itself is wrong.
        _ => (Permanent, Perm),
    }
}

/// The kind and a message for a `doupload.fileerror` code of `upload/poll_upload`.
pub fn classify_fileerror(code: u32) -> (ErrorKind, &'static str) {
    use ErrorKind::*;
    match code {
        1 => (
            QuotaExceeded,
            "file is larger than the maximum file size (too large)",
        ),
        2 => (Permanent, "file size cannot be 0"),
        3 | 4 | 9 => (Permanent, "archive is damaged or password protected"),
        5 => (Forbidden, "virus found"),
        6 => (Transient, "file lost on the server (internal error)"),
        7 => (Transient, "hash or size mismatch after assembly"),
        8 | 10 => (Transient, "internal server error"),
        12 => (Transient, "database failure"),
        13 => (
            AlreadyExists,
            "file name already exists in the same folder, skipped",
        ),
        14 => (NotFound, "destination folder does not exist"),
        15 => (QuotaExceeded, "account storage limit reached"),
        16 => (Transient, "revision conflict"),
        17 => (Permanent, "patch failed"),
        18 => (Auth, "account blocked"),
        19 => (Permanent, "path creation failure"),
        _ => (Permanent, "unknown upload failure"),
    }
}

/// The kind and a message for a negative `doupload.result`.
pub fn classify_upload_result(result: i64) -> (ErrorKind, &'static str) {
    match result {
        -20 => (ErrorKind::Permanent, "invalid upload key"),
        // Not the file that is missing: the upload session (expired or lost).
        -80 => (
            ErrorKind::Transient,
            "upload key not found (expired or lost by MediaFire)",
        ),
        _ => (ErrorKind::Permanent, "upload rejected"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_brief() {
        for c in [163, 261] {
            assert_eq!(classify(c), (ErrorKind::RateLimited, Retry::Temporary));
        }
        assert_eq!(classify(208), (ErrorKind::Transient, Retry::Temporary));
        assert_eq!(classify(100), (ErrorKind::Transient, Retry::Temporary));
        for c in [143, 158, 144, 159] {
            assert_eq!(classify(c).0, ErrorKind::AlreadyExists);
        }
        for c in [110, 112, 209, 210, 211, 259, 260] {
            assert_eq!(classify(c).0, ErrorKind::NotFound);
        }
        assert_eq!(classify(114).0, ErrorKind::Forbidden);
        assert_eq!(classify(162).0, ErrorKind::QuotaExceeded);
        for c in [118, 185] {
            assert_eq!(classify(c).0, ErrorKind::InvalidName);
        }
        for c in [107, 243, 104, 105] {
            assert_eq!(classify(c).0, ErrorKind::Auth);
        }
        assert!(is_session_expired(105) && is_session_expired(104));
        assert!(!is_session_expired(107));
        assert_eq!(classify(99_999), (ErrorKind::Permanent, Retry::Permanent));
    }

    #[test]
    fn upload_codes() {
        assert_eq!(classify_fileerror(13).0, ErrorKind::AlreadyExists);
        assert_eq!(classify_fileerror(15).0, ErrorKind::QuotaExceeded);
        assert_eq!(classify_fileerror(1).0, ErrorKind::QuotaExceeded);
        assert!(classify_fileerror(1).1.contains("too large"));
        assert_eq!(classify_fileerror(2).0, ErrorKind::Permanent);
        assert_eq!(classify_fileerror(7).0, ErrorKind::Transient);
        assert_eq!(classify_fileerror(14).0, ErrorKind::NotFound);
        assert_eq!(classify_upload_result(-80).0, ErrorKind::Transient);
    }
}
