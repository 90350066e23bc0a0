//! Reads the skill archives an oma server hands out (`…/versions/{v}/content`): classic ZIP
//! with STORED entries, which is what oma writes. Compressed entries are refused by name
//! rather than extracted wrong; every entry's CRC-32 is checked.

const LOCAL_HEADER_SIG: u32 = 0x0403_4b50;
const CENTRAL_HEADER_SIG: u32 = 0x0201_4b50;
const END_OF_CENTRAL_DIR_SIG: u32 = 0x0605_4b50;
const EOCD_LEN: usize = 22;

/// One file of an archive: its name (`/`-separated, as stored) and bytes.
#[derive(Debug)]
pub struct Entry {
    pub name: String,
    pub data: Vec<u8>,
}

/// The archive's files (directories left out).
pub fn read(archive: &[u8]) -> Result<Vec<Entry>, String> {
    let eocd = find_eocd(archive).ok_or("not a ZIP archive (no end-of-central-directory)")?;
    let count = u16_at(archive, eocd + 10)? as usize;
    let mut at = u32_at(archive, eocd + 16)? as usize;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        if u32_at(archive, at)? != CENTRAL_HEADER_SIG {
            return Err("corrupt central directory".into());
        }
        let method = u16_at(archive, at + 10)?;
        let crc = u32_at(archive, at + 16)?;
        let size = u32_at(archive, at + 20)? as usize;
        let name_len = u16_at(archive, at + 28)? as usize;
        let extra_len = u16_at(archive, at + 30)? as usize;
        let comment_len = u16_at(archive, at + 32)? as usize;
        let local = u32_at(archive, at + 42)? as usize;
        let name = slice(archive, at + 46, name_len)?;
        let name = String::from_utf8(name.to_vec()).map_err(|_| "an entry name is not UTF-8")?;
        at += 46 + name_len + extra_len + comment_len;
        if name.ends_with('/') {
            continue;
        }
        if method != 0 {
            return Err(format!(
                "entry `{name}` is compressed (method {method}); only STORED entries are read"
            ));
        }
        if u32_at(archive, local)? != LOCAL_HEADER_SIG {
            return Err(format!("corrupt local header for `{name}`"));
        }
        let local_name = u16_at(archive, local + 26)? as usize;
        let local_extra = u16_at(archive, local + 28)? as usize;
        let data = slice(archive, local + 30 + local_name + local_extra, size)?;
        if crc32fast::hash(data) != crc {
            return Err(format!("entry `{name}` fails its CRC-32 check"));
        }
        out.push(Entry {
            name,
            data: data.to_vec(),
        });
    }
    Ok(out)
}

fn find_eocd(a: &[u8]) -> Option<usize> {
    let last = a.len().checked_sub(EOCD_LEN)?;
    let first = last.saturating_sub(u16::MAX as usize);
    (first..=last)
        .rev()
        .find(|&i| u32_at(a, i).ok() == Some(END_OF_CENTRAL_DIR_SIG))
}

fn slice(a: &[u8], at: usize, len: usize) -> Result<&[u8], String> {
    at.checked_add(len)
        .and_then(|end| a.get(at..end))
        .ok_or_else(|| "the archive is truncated".to_string())
}

fn u16_at(a: &[u8], at: usize) -> Result<u16, String> {
    let b = slice(a, at, 2)?;
    Ok(u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(a: &[u8], at: usize) -> Result<u32, String> {
    let b = slice(a, at, 4)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A STORED archive as `zip -0` (and oma's writer) lays it out.
    fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, data) in files {
            let offset = out.len() as u32;
            let crc = crc32fast::hash(data);
            let mut common = Vec::new();
            common.extend_from_slice(&20u16.to_le_bytes());
            common.extend_from_slice(&0u16.to_le_bytes()); // flags
            common.extend_from_slice(&0u16.to_le_bytes()); // stored
            common.extend_from_slice(&[0; 4]); // time, date
            common.extend_from_slice(&crc.to_le_bytes());
            common.extend_from_slice(&(data.len() as u32).to_le_bytes());
            common.extend_from_slice(&(data.len() as u32).to_le_bytes());
            common.extend_from_slice(&(name.len() as u16).to_le_bytes());
            common.extend_from_slice(&0u16.to_le_bytes()); // extra
            out.extend_from_slice(&LOCAL_HEADER_SIG.to_le_bytes());
            out.extend_from_slice(&common);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(data);
            central.extend_from_slice(&CENTRAL_HEADER_SIG.to_le_bytes());
            central.extend_from_slice(&20u16.to_le_bytes()); // made by
            central.extend_from_slice(&common);
            central.extend_from_slice(&[0; 8]); // comment len, disk, attrs
            central.extend_from_slice(&[0; 2]);
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(&END_OF_CENTRAL_DIR_SIG.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(files.len() as u16).to_le_bytes());
        out.extend_from_slice(&(files.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    #[test]
    fn stored_entries_are_read_and_checked() {
        let a = archive(&[
            ("s/", b""),
            ("s/SKILL.md", b"# hi\n"),
            ("s/bin/x", &[0, 1, 255]),
        ]);
        let files = read(&a).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["s/SKILL.md", "s/bin/x"]);
        assert_eq!(files[1].data, [0, 1, 255]);

        let mut corrupt = a.clone();
        let at = corrupt.windows(5).position(|w| w == b"# hi\n").unwrap();
        corrupt[at] = b'!';
        assert!(read(&corrupt).unwrap_err().contains("CRC-32"));
        assert!(read(&a[..a.len() - 30]).is_err());
        assert!(read(b"not a zip").is_err());
    }
}
