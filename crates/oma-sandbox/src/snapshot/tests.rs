use super::*;

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;

/// Everything a snapshot promises to keep, per relative path.
fn manifest(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let rel = rel.join(e.file_name());
            let abs = root.join(&rel);
            let m = fs::symlink_metadata(&abs).unwrap();
            let what = if m.is_dir() {
                stack.push(rel.clone());
                format!("dir {:o} {}", m.mode() & 0o7777, m.mtime())
            } else if m.is_symlink() {
                format!("link -> {}", fs::read_link(&abs).unwrap().display())
            } else if m.is_file() {
                format!(
                    "file {:o} {} {:?}",
                    m.mode() & 0o7777,
                    m.mtime(),
                    fs::read(&abs).unwrap()
                )
            } else {
                "other".to_string()
            };
            out.insert(rel.display().to_string(), what);
        }
    }
    out
}

fn set_mtime(p: &Path, secs: i64) {
    let t = filetime::FileTime::from_unix_time(secs, 0);
    filetime::set_symlink_file_times(p, t, t).unwrap();
}

/// A workspace with every kind of thing a snapshot keeps.
fn sample(root: &Path) {
    fs::create_dir_all(root.join("src/deep/er")).unwrap();
    fs::create_dir(root.join("empty")).unwrap();
    let binary: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    fs::write(root.join("src/deep/er/blob.bin"), &binary).unwrap();
    fs::write(root.join("empty.txt"), b"").unwrap();
    fs::write(root.join("run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o750)).unwrap();
    let long = "n".repeat(150);
    fs::write(root.join("src").join(&long), b"long name").unwrap();
    symlink("src/deep/er/blob.bin", root.join("rel_link")).unwrap();
    symlink("/etc/hostname", root.join("abs_link")).unwrap();
    symlink("does/not/exist", root.join("dangling")).unwrap();
    symlink(format!("src/{long}"), root.join("long_target")).unwrap();
    fs::create_dir(root.join("ro")).unwrap();
    fs::write(root.join("ro/inside"), b"kept").unwrap();
    fs::set_permissions(root.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
    for (i, p) in [
        "src",
        "src/deep/er/blob.bin",
        "run.sh",
        "ro",
        "rel_link",
        "empty",
    ]
    .iter()
    .enumerate()
    {
        set_mtime(&root.join(p), 1_600_000_000 + i as i64 * 1000);
    }
}

fn pack_to_vec(root: &Path) -> (Vec<u8>, SnapshotStats) {
    let mut buf = Vec::new();
    let stats = pack(root, &mut buf).unwrap();
    (buf, stats)
}

#[test]
fn round_trip_keeps_files_dirs_symlinks_modes_and_mtimes() {
    let src = tempfile::tempdir().unwrap();
    sample(src.path());
    // Not kept: a FIFO.
    std::process::Command::new("mkfifo")
        .arg(src.path().join("pipe"))
        .status()
        .unwrap();
    let (tar, stats) = pack_to_vec(src.path());
    assert_eq!(stats.symlinks, 4);
    assert_eq!(stats.skipped, 1);
    assert_eq!(stats.dirs, 5);

    let dst = tempfile::tempdir().unwrap();
    let out = dst.path().join("ws");
    let back = unpack(&tar[..], &out).unwrap();
    assert_eq!(back.files, stats.files);
    assert_eq!(back.bytes, stats.bytes);
    let mut expected = manifest(src.path());
    expected.remove("pipe");
    assert_eq!(manifest(&out), expected);
    // Symlinks came back as links, not as copies of what they point to.
    assert!(
        fs::symlink_metadata(out.join("abs_link"))
            .unwrap()
            .is_symlink()
    );
    // Let the temp dirs be removed.
    for d in [src.path(), &out] {
        fs::set_permissions(d.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn packing_never_follows_a_symlink() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), b"host secret").unwrap();
    let src = tempfile::tempdir().unwrap();
    symlink(outside.path(), src.path().join("escape")).unwrap();
    let (tar, stats) = pack_to_vec(src.path());
    assert_eq!((stats.files, stats.symlinks), (0, 1));
    assert!(!tar.windows(11).any(|w| w == b"host secret"));
}

#[test]
fn unpack_needs_an_empty_folder() {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("a"), b"a").unwrap();
    let (tar, _) = pack_to_vec(src.path());
    let dst = tempfile::tempdir().unwrap();
    fs::write(dst.path().join("already"), b"x").unwrap();
    assert!(matches!(
        unpack(&tar[..], dst.path()),
        Err(SnapshotError::NotEmpty(_))
    ));
    assert_eq!(fs::read(dst.path().join("already")).unwrap(), b"x");
}

/// A raw header with a name the tar crate's safe setters would refuse.
fn raw_header(name: &[u8], kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h
}

fn hostile(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b);
    b.into_inner().unwrap()
}

fn add(b: &mut tar::Builder<Vec<u8>>, mut h: tar::Header, data: &[u8]) {
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn link(b: &mut tar::Builder<Vec<u8>>, name: &[u8], kind: tar::EntryType, target: &[u8]) {
    let mut h = raw_header(name, kind, 0);
    h.as_old_mut().linkname[..target.len()].copy_from_slice(target);
    add(b, h, b"");
}

#[test]
fn hostile_archives_are_refused_and_write_nothing_outside() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("victim");
    fs::write(&target, b"original").unwrap();
    let victim = target.display().to_string();
    let outside_dir = outside.path().display().to_string();

    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "absolute path",
            hostile(|b| {
                add(
                    b,
                    raw_header(victim.as_bytes(), tar::EntryType::Regular, 3),
                    b"pwn",
                )
            }),
        ),
        (
            "dot-dot",
            hostile(|b| {
                add(
                    b,
                    raw_header(b"a/../../victim", tar::EntryType::Regular, 3),
                    b"pwn",
                )
            }),
        ),
        (
            "write through an absolute symlink",
            hostile(|b| {
                link(b, b"esc", tar::EntryType::Symlink, outside_dir.as_bytes());
                add(
                    b,
                    raw_header(b"esc/victim", tar::EntryType::Regular, 3),
                    b"pwn",
                );
            }),
        ),
        (
            "write through a relative symlink",
            hostile(|b| {
                link(
                    b,
                    b"up",
                    tar::EntryType::Symlink,
                    b"../../../../../../../..",
                );
                add(
                    b,
                    raw_header(b"up/tmp/x", tar::EntryType::Regular, 3),
                    b"pwn",
                );
            }),
        ),
        (
            "file over a symlink",
            hostile(|b| {
                link(b, b"f", tar::EntryType::Symlink, victim.as_bytes());
                add(b, raw_header(b"f", tar::EntryType::Regular, 3), b"pwn");
            }),
        ),
        (
            "hard link to a host file",
            hostile(|b| link(b, b"h", tar::EntryType::Link, victim.as_bytes())),
        ),
        (
            "device",
            hostile(|b| add(b, raw_header(b"dev", tar::EntryType::Char, 0), b"")),
        ),
        (
            "duplicate name",
            hostile(|b| {
                add(b, raw_header(b"d", tar::EntryType::Regular, 1), b"1");
                add(b, raw_header(b"d", tar::EntryType::Regular, 1), b"2");
            }),
        ),
        (
            "truncated",
            hostile(|b| add(b, raw_header(b"t", tar::EntryType::Regular, 3), b"abc"))[..600]
                .to_vec(),
        ),
    ];
    for (what, tar) in cases {
        let dst = tempfile::tempdir().unwrap();
        let res = unpack(&tar[..], &dst.path().join("ws"));
        assert!(
            matches!(res, Err(SnapshotError::Invalid(_))),
            "{what}: {res:?}"
        );
        assert_eq!(fs::read(&target).unwrap(), b"original", "{what}");
        assert_eq!(
            fs::read_dir(outside.path()).unwrap().count(),
            1,
            "{what} wrote beside the victim"
        );
    }
}

#[test]
fn set_id_bits_are_dropped() {
    let tar = hostile(|b| {
        let mut h = raw_header(b"suid", tar::EntryType::Regular, 2);
        h.set_mode(0o6755);
        add(b, h, b"#!");
    });
    let dst = tempfile::tempdir().unwrap();
    unpack(&tar[..], dst.path()).unwrap();
    let mode = fs::metadata(dst.path().join("suid")).unwrap().mode();
    assert_eq!(mode & 0o7777, 0o755);
}

#[tokio::test]
async fn streams_round_trip_and_an_aborted_source_fails_the_unpack() {
    let src = tempfile::tempdir().unwrap();
    fs::create_dir(src.path().join("d")).unwrap();
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(src.path().join("d/big"), &big).unwrap();
    fs::write(src.path().join("small"), b"s").unwrap();

    let mut packing = pack_stream(src.path().to_path_buf());
    let mut chunks = Vec::new();
    while let Some(c) = packing.next_chunk().await {
        chunks.push(c);
    }
    let stats = packing.finish().await.unwrap();
    assert_eq!(stats.bytes, big.len() as u64 + 1);
    assert!(chunks.len() > 1, "streamed in pieces");

    let dst = tempfile::tempdir().unwrap();
    let mut sink = unpack_stream(dst.path().join("ws"));
    for c in chunks.clone() {
        assert!(sink.write(c).await);
    }
    sink.finish().await.unwrap();
    assert_eq!(fs::read(dst.path().join("ws/d/big")).unwrap(), big);

    // The source fails after the first piece: the unpack must not look complete.
    let mut sink = unpack_stream(dst.path().join("ws2"));
    assert!(sink.write(chunks[0].clone()).await);
    assert!(sink.abort("blob read failed".into()).await.is_err());

    // A packer whose reader goes away stops with an error.
    let mut packing = pack_stream(src.path().to_path_buf());
    let _ = packing.next_chunk().await;
    assert!(packing.finish().await.is_err());
}
