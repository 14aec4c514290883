//! Every recorded MediaFire body in `tests/fixtures/mediafire/` goes through
//! the client's decoding (the envelope plus the typed decoder of its
//! endpoint), with one assertion set per fixture. A fixture without an
//! assertion set fails the test, so a new recording cannot be forgotten.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use serde::de::DeserializeOwned;

use mediafire_dav::error::{Error, ErrorKind, Retry};
use mediafire_dav::mediafire::download::pick_direct_link;
use mediafire_dav::mediafire::envelope;
use mediafire_dav::mediafire::types::*;
use mediafire_dav::mediafire::upload::{UnitLayout, poll_outcome};
use mediafire_dav::mediafire::{file_info, folder_info};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mediafire")
}

fn body(rel: &str) -> Vec<u8> {
    std::fs::read(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Decodes a fixture as if it came with HTTP `status`.
fn decode_with<T: DeserializeOwned>(rel: &str, status: u16) -> Result<T, Error> {
    envelope::decode::<T>("fixture", status, &body(rel))
}

fn ok<T: DeserializeOwned>(rel: &str) -> T {
    decode_with::<T>(rel, 200).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Error fixtures decode to the same error with 200 and 400 (spec §2.3).
fn err(rel: &str) -> Error {
    let a = decode_with::<Ack>(rel, 200).expect_err(rel);
    let b = decode_with::<Ack>(rel, 400).expect_err(rel);
    assert_eq!((a.kind(), a.code()), (b.kind(), b.code()), "{rel}");
    a
}

fn utc(secs: u64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Runs the assertion set of one fixture; false if there is none.
fn check(rel: &str) -> bool {
    match rel {
        // ---- contact / device / system -------------------------------------
        "contact/fetch-empty.json" => {
            ok::<Ack>(rel);
        }
        "device/get_changes-empty.json" => {
            let r: DeviceChangesResponse = ok(rel);
            assert_eq!(r.device_revision, 15260);
            assert_eq!(r.changes_list_block, 500);
            assert!(r.updated.files.is_empty() && r.updated.folders.is_empty());
            assert!(r.deleted.files.is_empty() && r.deleted.folders.is_empty());
        }
        "device/get_status.json" => {
            let r: DeviceStatusResponse = ok(rel);
            assert_eq!(r.device_revision, 272536);
            assert!(!r.async_jobs_in_progress);
        }
        "system/get_limits.json" => {
            let r: SystemLimitsResponse = ok(rel);
            assert_eq!(r.limits.max_keys, Some(500));
            assert_eq!(r.limits.max_objects, Some(6000));
            assert_eq!(r.limits.folder_content_chunk_size, Some(100));
            assert_eq!(r.limits.folder_depth_limit, Some(130));
        }

        // ---- errors --------------------------------------------------------
        "errors/104-session-token-missing-folder-get_info.json"
        | "errors/104-session-token-missing-string-code.json" => {
            let e = err(rel);
            assert_eq!((e.code(), e.kind()), (Some(104), ErrorKind::Auth));
            assert_eq!(e.message(), "Session Token is missing");
        }
        "errors/105-session-expired-file-get_info.json"
        | "errors/105-session-expired-upload-instant.json"
        | "errors/105-session-expired-user-get_info.json" => {
            let e = err(rel);
            assert_eq!((e.code(), e.kind()), (Some(105), ErrorKind::Auth));
            assert!(mediafire_dav::mediafire::codes::is_session_expired(105));
        }
        "errors/107-invalid-credentials-string-code.json"
        | "errors/107-invalid-credentials.json" => {
            let e = err(rel);
            assert_eq!(
                (e.code(), e.kind(), e.retry()),
                (Some(107), ErrorKind::Auth, Retry::Permanent)
            );
        }
        "errors/111-quick-key-missing-file-get_info.json" => {
            let e = err(rel);
            assert_eq!((e.code(), e.kind()), (Some(111), ErrorKind::NotFound));
        }
        "errors/129-invalid-parameters-poll_upload.json" => {
            let e = err(rel);
            assert_eq!(
                (e.code(), e.kind(), e.retry()),
                (Some(129), ErrorKind::Permanent, Retry::Permanent)
            );
            // A poll rejected by the envelope never reaches the poll decoder.
            assert!(decode_with::<PollUploadResponse>(rel, 200).is_err());
        }
        "errors/243-account-locked-string-code.json" => {
            let e = err(rel);
            assert_eq!((e.code(), e.kind()), (Some(243), ErrorKind::Auth));
            assert!(e.message().contains("temporarily locked"));
        }

        // ---- files ---------------------------------------------------------
        "file/get_info-image-private.json" => {
            let f = file_info(ok::<FileInfoResponse>(rel).file_info);
            assert_eq!(
                (f.quickkey.as_str(), f.name.as_str()),
                ("abcdefg", "IMG_20150604_074149.jpeg")
            );
            assert_eq!((f.size, f.revision), (96990, 270087));
            // No created_utc in a 1.4 file/get_info: the epoch, never local time.
            assert_eq!(f.created, UNIX_EPOCH);
        }
        "file/get_info-private-all-links.json" => {
            let r: FileInfoResponse = ok(rel);
            assert_eq!(r.file_info.parent_folderkey, None);
            let f = file_info(r.file_info);
            assert_eq!(
                (f.quickkey.as_str(), f.size, f.revision),
                ("123456789012345", 17, 4075)
            );
            assert_eq!(
                f.hash,
                "3c17441d7d75aabe588665ff6a006e05ce60d7f2dbc0cce9e7a94457e2366bd7"
            );
        }
        "file/get_links-link-error-no-permission.json" => {
            let r: LinksResponse = ok(rel);
            assert_eq!(r.links.len(), 1);
            assert_eq!(r.links[0].error.as_deref(), Some("User lacks permissions"));
            let e = pick_direct_link("removed", &r.links).expect_err("per-entry error is an error");
            assert_eq!(e.kind(), ErrorKind::Forbidden);
            assert!(e.message().contains("User lacks permissions"));
        }

        // ---- folders -------------------------------------------------------
        "folder/get_content-files-empty.json" => {
            let c = ok::<FolderContentResponse>(rel).folder_content;
            assert!(c.files.is_empty() && c.folders.is_empty() && !c.more_chunks);
        }
        "folder/get_content-folders-empty.json" => {
            let c = ok::<FolderContentResponse>(rel).folder_content;
            assert!(c.files.is_empty() && c.folders.is_empty() && !c.more_chunks);
        }
        "folder/get_content-files-public-2026.json" => {
            let c = ok::<FolderContentResponse>(rel).folder_content;
            assert_eq!(
                (c.folderkey.as_deref(), c.revision, c.more_chunks),
                (Some("rww7bhhi0yc1l"), 2995, false)
            );
            let files: Vec<_> = c.files.into_iter().map(file_info).collect();
            assert_eq!(files.len(), 19);
            let mut names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
            names.sort();
            let mut want: Vec<String> = (1..=19)
                .map(|i| format!("Galaxy-s9-wallpaper-{i}.png"))
                .collect();
            want.sort();
            assert_eq!(names, want);
            let first = &files[0];
            assert_eq!(
                (first.quickkey.as_str(), first.size, first.revision),
                ("8ipst0t9u6sibpx", 3117448, 1027)
            );
            assert_eq!(
                first.hash,
                "84d36b4b1a3665d7cb8625c52c7bbcbed84789f26819a06d3e08127682e71ef4"
            );
            // created_utc "2021-09-28T06:10:15Z", not the Central-time "created".
            assert_eq!(first.created, utc(1632809415));
            let total: u64 = files.iter().map(|f| f.size).sum();
            assert_eq!(total, 56_933_707);
            let w2 = files
                .iter()
                .find(|f| f.name == "Galaxy-s9-wallpaper-2.png")
                .unwrap();
            assert_eq!(
                (w2.quickkey.as_str(), w2.size),
                ("vl95ouin76tka9i", 4599421)
            );
        }
        "folder/get_content-files-sandbox-2014.json" => {
            let c = ok::<FolderContentResponse>(rel).folder_content;
            let files: Vec<_> = c.files.into_iter().map(file_info).collect();
            let got: Vec<(&str, &str, u64)> = files
                .iter()
                .map(|f| (f.quickkey.as_str(), f.name.as_str(), f.size))
                .collect();
            assert_eq!(
                got,
                [
                    ("cotmhq9wc1h911j", "1401815547_1.dat", 5292032),
                    ("wy1zgub13rk4638", "1401815580_1.dat", 1048576),
                    ("2t0t48clys52jj5", "1401815580_2.dat", 1048576),
                    ("e86s71hq44fow6v", "1401815580_3.dat", 1048576),
                    ("fl6kmh4wh8vgm67", "1401815580_4.dat", 1048576),
                ]
            );
            assert_eq!(files[0].revision, 1657);
            assert!(
                files.iter().all(|f| f.created == UNIX_EPOCH),
                "no created_utc in 2014"
            );
        }
        "folder/get_content-folders-public-2026.json" => {
            let c = ok::<FolderContentResponse>(rel).folder_content;
            let folders: Vec<_> = c.folders.into_iter().map(folder_info).collect();
            let got: Vec<(&str, &str, u64)> = folders
                .iter()
                .map(|f| (f.key.as_str(), f.name.as_str(), f.revision))
                .collect();
            assert_eq!(
                got,
                [
                    ("x67lis2zygml5", "EmptyFolder", 1142),
                    ("gtrp6u25m6nmb", "TestFolder", 2996)
                ]
            );
            assert_eq!(folders[0].created, utc(1656860468)); // 2022-07-03T15:01:08Z
        }
        "folder/get_content-folders-sandbox-2014.json" => {
            let c = ok::<FolderContentResponse>(rel).folder_content;
            let names: Vec<_> = c
                .folders
                .iter()
                .map(|f| (f.folderkey.as_str(), f.name.as_str()))
                .collect();
            assert_eq!(
                names,
                [
                    ("a1xcgfr75j3cs", "noooo"),
                    ("coohp1much6ru", "retry"),
                    ("91x1wfodnnihd", "Tada"),
                    ("9zqnaax9a2bpm", "Tada2")
                ]
            );
            assert_eq!(c.folders[0].file_count, 10);
            assert!(c.files.is_empty());
        }
        "folder/get_info-public-folder-2026.json" => {
            let f = ok::<FolderInfoResponse>(rel).folder_info;
            assert_eq!((f.file_count, f.folder_count), (19, 2));
            let f = folder_info(f);
            assert_eq!(
                (f.key.as_str(), f.name.as_str(), f.revision),
                ("rww7bhhi0yc1l", "Droidfeats Galaxy S9 Walls", 2995)
            );
            assert_eq!(f.created, utc(1632809414)); // 2021-09-28T06:10:14Z
        }
        "folder/get_info-root-myfiles.json" => {
            let f = ok::<FolderInfoResponse>(rel).folder_info;
            assert_eq!(
                (f.folderkey.as_str(), f.name.as_str(), f.revision),
                ("myfiles", "myfiles", 272536)
            );
            assert_eq!((f.file_count, f.folder_count), (13, 6));
        }

        // ---- uploads -------------------------------------------------------
        "upload/check-duplicate-with-resumable-bitmap.json" => {
            let c: UploadCheckResponse = ok(rel);
            assert!(c.hash_exists && c.in_account && c.in_folder && c.file_exists);
            assert_eq!(c.different_hash, Some(false));
            assert_eq!(c.duplicate_quickkey.as_deref(), Some("q1w2e3r4t5y6u7i"));
            assert_eq!(c.available_space, Some(19024902978));
            let rs = c.resumable_upload.expect("resumable_upload");
            assert!(!rs.all_units_ready);
            let size = 21 * 4194304 - 100;
            let layout = UnitLayout::from_server(size, Some(&rs)).unwrap();
            assert_eq!((layout.unit_size, layout.count), (4194304, 21));
            assert_eq!(
                layout.missing(rs.bitmap.as_ref()),
                (0..21).collect::<Vec<_>>()
            );
        }
        "upload/check-file-exists-same-hash.json" => {
            let c: UploadCheckResponse = ok(rel);
            assert!(c.file_exists && c.hash_exists && c.in_folder);
            assert_eq!(c.different_hash, None, "1.2 reply without the flag");
            assert_eq!(c.duplicate_quickkey.as_deref(), Some("123456789012345"));
            assert!(c.resumable_upload.is_none() && !c.storage_limit_exceeded);
        }
        "upload/check-hash-exists-elsewhere.json" => {
            let c: UploadCheckResponse = ok(rel);
            assert!(c.hash_exists && !c.file_exists && !c.in_folder);
            assert_eq!(c.storage_limit, Some(1075889307648));
        }
        "upload/check-no-space-left-doc.json" => {
            let c: UploadCheckResponse = ok(rel);
            assert_eq!(c.available_space, Some(0));
            assert!(!c.storage_limit_exceeded && !c.hash_exists);
        }
        "upload/check-resumable-no-bitmap-doc.json" => {
            let c: UploadCheckResponse = ok(rel);
            let rs = c.resumable_upload.expect("resumable_upload");
            assert!(rs.bitmap.is_none());
            let layout = UnitLayout::from_server(28 * 2097152, Some(&rs)).unwrap();
            assert_eq!(
                layout.missing(None).len(),
                28,
                "no bitmap: every unit is missing"
            );
        }
        "upload/check-storage-limit-exceeded-doc.json" => {
            let c: UploadCheckResponse = ok(rel);
            assert!(c.storage_limit_exceeded);
            assert_eq!(c.used_storage_size, Some(54882441579));
        }
        "upload/instant-device-revision-number.json" => {
            let r: UploadInstantResponse = ok(rel);
            assert_eq!(
                (r.quickkey.as_str(), r.filename.as_str()),
                ("123456789012345", "filename")
            );
            assert_eq!(
                (r.device_revision, r.new_device_revision),
                (Some(4085), None)
            );
            assert_eq!(
                r.newrevision.map(|n| n.revision),
                Some(4),
                "\"4.7\" keeps its integer part"
            );
        }
        "upload/instant-newrevision-doc.json" => {
            let r: UploadInstantResponse = ok(rel);
            assert_eq!(
                (r.quickkey.as_str(), r.filename.as_str()),
                ("32d392v90o3pvd3", "whatever.gif")
            );
            assert_eq!(r.device_revision, Some(22551));
            assert_eq!(
                r.newrevision.map(|n| (n.revision, n.epoch)),
                Some((456222, 1392312822))
            );
        }
        "upload/poll_upload-status-19-assembling-doc.json" => {
            let p = ok::<PollUploadResponse>(rel).doupload;
            assert_eq!((p.status, p.result, p.quickkey.as_deref()), (19, 0, None));
            assert!(!poll_outcome(&p).unwrap(), "19 means keep polling");
        }
        "upload/poll_upload-status-4-fileerror-8-doc.json" => {
            let p = ok::<PollUploadResponse>(rel).doupload;
            assert_eq!((p.status, p.fileerror.as_str()), (4, "8"));
            let e = poll_outcome(&p).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Transient);
            assert_eq!(e.context("fileerror"), Some("8"));
        }
        "upload/poll_upload-status-99-doc.json" => {
            let p = ok::<PollUploadResponse>(rel).doupload;
            assert!(poll_outcome(&p).unwrap());
            assert_eq!(
                (p.quickkey.as_deref(), p.size, p.revision),
                (Some("l86be19e1nrla8p"), Some(1334903), 456222)
            );
        }
        "upload/poll_upload-status-99-synthetic-numeric.json" => {
            let p = ok::<PollUploadResponse>(rel).doupload;
            assert_eq!(
                (p.result, p.status, p.size, p.revision),
                (0, 99, Some(1), 1)
            );
            assert_eq!(
                (p.quickkey.as_deref(), p.filename.as_deref()),
                (Some("123456789012345"), Some("filename"))
            );
            assert!(poll_outcome(&p).unwrap());
        }
        "upload/resumable-one-unit-doc.json" => {
            let r: UploadUnitResponse = ok(rel);
            assert_eq!(
                (r.doupload.result, r.doupload.key.as_str()),
                (0, "b7bpiovaoyv")
            );
            let rs = r.resumable_upload.expect("resumable_upload");
            assert_eq!(
                (rs.number_of_units, rs.unit_size, rs.all_units_ready),
                (1, 4194304, false)
            );
            assert_eq!(rs.bitmap.map(|b| b.words), Some(vec![0]));
        }
        "upload/simple-filedrop-key-synthetic.json" => {
            let r: UploadUnitResponse = ok(rel);
            assert_eq!(r.doupload.key, "792a6c57869232ba9f52d9143aa5b43b");
            assert_eq!(r.doupload.result, 0, "a missing result means accepted");
        }
        "upload/simple-live.json" => {
            let r: UploadUnitResponse = ok(rel);
            assert_eq!(
                (r.doupload.result, r.doupload.key.as_str()),
                (0, "53u05frn7sm")
            );
        }

        // ---- user ----------------------------------------------------------
        "user/get_action_token-image.json" => {
            let r: ActionTokenResponse = ok(rel);
            assert_eq!(r.action_token.len(), 160);
            assert!(
                !format!("{r:?}").contains("0123456789abcdef"),
                "Debug hides tokens"
            );
        }
        "user/get_info-free-facebook-linked.json" => {
            let u = ok::<UserInfoResponse>(rel).user_info;
            assert_eq!(
                (u.email.as_str(), u.display_name.as_str(), u.premium),
                ("user@example.com", "exampleuser", false)
            );
            assert_eq!(
                (u.used_storage_size, u.storage_limit, u.max_upload_size),
                (466138562, Some(21476933632), None)
            );
        }
        "user/get_info-premium.json" => {
            let u = ok::<UserInfoResponse>(rel).user_info;
            assert!(u.premium);
            assert_eq!(
                (u.used_storage_size, u.storage_limit),
                (100, Some(1075889307648))
            );
            assert_eq!(u.max_upload_size, Some(21474836580));
        }
        "user/get_session_token-v1-ekey-pkey.json" => {
            let r: SessionTokenResponse = ok(rel);
            assert_eq!(r.session_token.len(), 60);
        }
        "user/get_session_token-v2-secret-key.json" => {
            let r: SessionTokenResponse = ok(rel);
            assert_eq!(r.session_token.len(), 144);
        }
        "user/renew_session_token.json" => {
            let r: SessionTokenResponse = ok(rel);
            assert_eq!(r.session_token, "123456");
            assert!(!format!("{r:?}").contains("123456"));
        }
        _ => return false,
    }
    true
}

fn all_fixtures(dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all_fixtures(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.insert(
                path.strip_prefix(root())
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/"),
            );
        }
    }
}

#[test]
fn every_fixture_has_an_assertion_set() {
    let mut files = BTreeSet::new();
    all_fixtures(&root(), &mut files);
    assert!(files.len() >= 45, "fixtures missing: found {}", files.len());
    let unchecked: Vec<_> = files.iter().filter(|f| !check(f)).collect();
    assert!(
        unchecked.is_empty(),
        "fixtures without assertions: {unchecked:?}"
    );
}

#[test]
fn bodies_survive_any_status() {
    // The same success body with an odd status still decodes; a truncated
    // body is a transient error, never a panic.
    let mut files = BTreeSet::new();
    all_fixtures(&root(), &mut files);
    for f in files {
        let b = body(&f);
        let last_brace = b.iter().rposition(|c| *c == b'}').unwrap();
        for cut in [0, 1, b.len() / 2, last_brace] {
            let e = envelope::decode::<Ack>("fixture", 200, &b[..cut]).expect_err(&f);
            assert_eq!(e.kind(), ErrorKind::Transient, "{f} cut at {cut}");
        }
    }
}
