//! A minimal ZIP writer for skill downloads: STORED entries (no compression), UTF-8 names,
//! CRC-32 via `crc32fast`, no ZIP64.
//!
//! Skill uploads are capped well below 4 GiB and 65 535 files, so the classic format always
//! suffices; the writer still refuses inputs beyond its limits instead of writing a corrupt
//! archive. Compression is left out on purpose: skill files are small text, and a STORED
//! archive is simple enough to get exactly right without a dependency.

use oma_core::Error;

const LOCAL_HEADER_SIG: u32 = 0x0403_4b50;
const CENTRAL_HEADER_SIG: u32 = 0x0201_4b50;
const END_OF_CENTRAL_DIR_SIG: u32 = 0x0605_4b50;
/// Version 2.0: the minimum for directories and the general-purpose flags used here.
const VERSION_NEEDED: u16 = 20;
/// "Made by" Unix (high byte 3) so extractors honour the permission bits in the external
/// attributes.
const VERSION_MADE_BY: u16 = (3 << 8) | VERSION_NEEDED;
/// General-purpose flag bit 11: names are UTF-8.
const FLAG_UTF8: u16 = 1 << 11;
const METHOD_STORED: u16 = 0;
/// `-rw-r--r--` regular file, in the high half of the external attributes.
const UNIX_FILE_MODE: u32 = 0o100_644;

/// Builds a ZIP archive in memory.
pub struct ZipWriter {
    out: Vec<u8>,
    central: Vec<u8>,
    entries: u16,
    dos_time: u16,
    dos_date: u16,
}

impl ZipWriter {
    /// A writer whose entries all carry the modification time `micros` (Unix epoch micros).
    pub fn new(micros: i64) -> Self {
        let (dos_time, dos_date) = dos_datetime(micros);
        Self {
            out: Vec::new(),
            central: Vec::new(),
            entries: 0,
            dos_time,
            dos_date,
        }
    }

    /// Appends a file entry.
    pub fn add(&mut self, name: &str, data: &[u8]) -> Result<(), Error> {
        let too_big =
            || Error::too_large("the skill version is too large to package as a ZIP archive");
        let name_len = u16::try_from(name.len()).map_err(|_| too_big())?;
        let size = u32::try_from(data.len()).map_err(|_| too_big())?;
        let offset = u32::try_from(self.out.len()).map_err(|_| too_big())?;
        self.entries = self.entries.checked_add(1).ok_or_else(too_big)?;
        let crc = crc32fast::hash(data);

        let out = &mut self.out;
        put32(out, LOCAL_HEADER_SIG);
        put16(out, VERSION_NEEDED);
        put16(out, FLAG_UTF8);
        put16(out, METHOD_STORED);
        put16(out, self.dos_time);
        put16(out, self.dos_date);
        put32(out, crc);
        put32(out, size); // compressed size (stored: the same)
        put32(out, size);
        put16(out, name_len);
        put16(out, 0); // extra field length
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);

        let c = &mut self.central;
        put32(c, CENTRAL_HEADER_SIG);
        put16(c, VERSION_MADE_BY);
        put16(c, VERSION_NEEDED);
        put16(c, FLAG_UTF8);
        put16(c, METHOD_STORED);
        put16(c, self.dos_time);
        put16(c, self.dos_date);
        put32(c, crc);
        put32(c, size);
        put32(c, size);
        put16(c, name_len);
        put16(c, 0); // extra field length
        put16(c, 0); // comment length
        put16(c, 0); // disk number start
        put16(c, 0); // internal attributes
        put32(c, UNIX_FILE_MODE << 16);
        put32(c, offset);
        c.extend_from_slice(name.as_bytes());

        // The archive must stay addressable with 32-bit offsets once the directory follows.
        u32::try_from(self.out.len() + self.central.len()).map_err(|_| too_big())?;
        Ok(())
    }

    /// Appends the central directory and returns the archive.
    pub fn finish(mut self) -> Result<Vec<u8>, Error> {
        let too_big =
            || Error::too_large("the skill version is too large to package as a ZIP archive");
        let cd_offset = u32::try_from(self.out.len()).map_err(|_| too_big())?;
        let cd_size = u32::try_from(self.central.len()).map_err(|_| too_big())?;
        let mut out = self.out;
        out.append(&mut self.central);
        put32(&mut out, END_OF_CENTRAL_DIR_SIG);
        put16(&mut out, 0); // this disk
        put16(&mut out, 0); // disk with the central directory
        put16(&mut out, self.entries);
        put16(&mut out, self.entries);
        put32(&mut out, cd_size);
        put32(&mut out, cd_offset);
        put16(&mut out, 0); // comment length
        Ok(out)
    }
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// MS-DOS time and date of a Unix time in micros (UTC). DOS dates start in 1980 and end in
/// 2107; times outside are clamped to the nearest end.
fn dos_datetime(micros: i64) -> (u16, u16) {
    let secs = micros.div_euclid(1_000_000);
    let t =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let year = t.year();
    if year < 1980 {
        return (0, (1 << 5) | 1); // 1980-01-01 00:00:00
    }
    if year > 2107 {
        return ((23 << 11) | (59 << 5) | 29, (127 << 9) | (12 << 5) | 31);
    }
    let time =
        (u16::from(t.hour()) << 11) | (u16::from(t.minute()) << 5) | (u16::from(t.second()) / 2);
    // `year - 1980` is within 0..=127 here, so the cast cannot truncate.
    let date =
        (((year - 1980) as u16) << 9) | (u16::from(u8::from(t.month())) << 5) | u16::from(t.day());
    (time, date)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(b: &[u8], i: usize) -> u16 {
        u16::from_le_bytes([b[i], b[i + 1]])
    }
    fn u32_at(b: &[u8], i: usize) -> u32 {
        u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
    }

    #[test]
    fn layout_is_a_valid_stored_archive() {
        let mut z = ZipWriter::new(1_767_323_045_000_000); // 2026-01-02T03:04:05Z
        z.add("s/SKILL.md", b"hello").unwrap();
        z.add("s/d/\u{e9}.txt", b"").unwrap();
        let zip = z.finish().unwrap();

        // End of central directory: two entries, directory right after the data.
        let eocd = zip.len() - 22;
        assert_eq!(u32_at(&zip, eocd), END_OF_CENTRAL_DIR_SIG);
        assert_eq!(u16_at(&zip, eocd + 10), 2);
        let cd_size = u32_at(&zip, eocd + 12) as usize;
        let cd_offset = u32_at(&zip, eocd + 16) as usize;
        assert_eq!(cd_offset + cd_size, eocd);

        // First local header: name, sizes, CRC and data in place.
        assert_eq!(u32_at(&zip, 0), LOCAL_HEADER_SIG);
        assert_eq!(u32_at(&zip, 14), crc32fast::hash(b"hello"));
        assert_eq!(u32_at(&zip, 18), 5);
        assert_eq!(&zip[30..40], b"s/SKILL.md");
        assert_eq!(&zip[40..45], b"hello");

        // Central entries point back at their local headers.
        assert_eq!(u32_at(&zip, cd_offset), CENTRAL_HEADER_SIG);
        assert_eq!(u32_at(&zip, cd_offset + 42), 0);
        let second = cd_offset + 46 + "s/SKILL.md".len();
        assert_eq!(u32_at(&zip, second), CENTRAL_HEADER_SIG);
        assert_eq!(u32_at(&zip, second + 42), 45);
        assert_eq!(u16_at(&zip, second + 8) & FLAG_UTF8, FLAG_UTF8);
    }

    #[test]
    fn dos_times() {
        // 2026-01-02T03:04:05Z → 03:04:04 (2-second resolution), 2026-01-02.
        let (t, d) = dos_datetime(1_767_323_045_000_000);
        assert_eq!(t, (3 << 11) | (4 << 5) | 2);
        assert_eq!(d, (46 << 9) | (1 << 5) | 2);
        assert_eq!(dos_datetime(0), (0, (1 << 5) | 1));
    }

    #[test]
    fn empty_archive() {
        let zip = ZipWriter::new(0).finish().unwrap();
        assert_eq!(zip.len(), 22);
        assert_eq!(u32_at(&zip, 0), END_OF_CENTRAL_DIR_SIG);
    }
}
