//! The write-ahead log of a small message queue.
//!
//! A producer publishes a message; when [`Log::publish`] returns `Ok`, the producer is told
//! its message is safe (acked) and forgets it. Every message is one record appended to
//! [`LOG_FILE`]:
//!
//! ```text
//! ┌─────────────┬───────────────┬───────────────────┐
//! │ length: u32 │ checksum: u32 │ payload (length)  │
//! └─────────────┴───────────────┴───────────────────┘
//! ```
//!
//! Both numbers are little-endian; the checksum is [`bughunt_kit::disk::checksum`] of the
//! payload. After a restart, [`recover`] reads the records back in order and stops at the
//! first one that is not whole: the torn tail a power cut can leave in the middle of a write.

use std::io;

use bughunt_kit::disk::{checksum, Disk};

/// The log's only file.
pub const LOG_FILE: &str = "queue.log";
/// The largest payload one record holds. Recovery also uses it to refuse a length read from
/// a torn header instead of trusting it.
pub const PAYLOAD_MAX_BYTES: usize = 64 * 1024;
/// The most messages one batch may publish.
pub const BATCH_MAX_MESSAGES: usize = 1_024;

/// length (u32) + checksum (u32).
const HEADER_BYTES: usize = 8;

/// The log, open for publishing.
pub struct Log {
    disk: Disk,
}

impl Log {
    /// Opens the log on `disk`, creating [`LOG_FILE`] if it does not exist yet.
    pub fn open(disk: Disk) -> io::Result<Log> {
        if !disk.exists(LOG_FILE) {
            create_log_file(&disk)?;
        }
        Ok(Log { disk })
    }

    /// Publishes one message. `Ok` is the ack: the producer forgets the message.
    pub fn publish(&mut self, payload: &[u8]) -> io::Result<()> {
        let mut record = Vec::with_capacity(HEADER_BYTES + payload.len());
        encode(payload, &mut record)?;
        //~ site: ack-before-fsync
        self.disk.append(LOG_FILE, &record)?;
        // FIX: `append` only reaches the page cache, and a power cut loses the page cache.
        // `Ok` is the ack: the producer forgets the message when it hears it, so the record
        // must be durable first. fsync, then ack. And if the fsync fails, the record may or
        // may not be on disk: pass the error on (no ack), never swallow it and say Ok.
        self.disk.sync(LOG_FILE)
        //~ broken:
        //~ self.disk.append(LOG_FILE, &record)
        //~ end
    }

    /// Publishes several messages in one write. `Ok` acks all of them.
    pub fn publish_batch(&mut self, payloads: &[&[u8]]) -> io::Result<()> {
        if payloads.len() > BATCH_MAX_MESSAGES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a batch holds at most {BATCH_MAX_MESSAGES} messages"),
            ));
        }
        let mut records = Vec::new();
        for payload in payloads {
            encode(payload, &mut records)?;
        }
        //~ site: ack-before-fsync
        self.disk.append(LOG_FILE, &records)?;
        // FIX: the same promise for every message in the batch, so the same fsync before the
        // ack. One fsync for the whole batch (group commit): it costs one fsync for N
        // messages instead of N, and the price is latency, since no message of the batch is
        // acked before the last one is written and the whole batch is on disk.
        self.disk.sync(LOG_FILE)
        //~ broken:
        //~ self.disk.append(LOG_FILE, &records)
        //~ end
    }
}

/// Creates [`LOG_FILE`], empty, for [`Log::open`].
fn create_log_file(disk: &Disk) -> io::Result<()> {
    //~ site: create-without-dir-sync
    disk.create(LOG_FILE)?;
    // FIX: a new file's name survives a power cut only once its directory is synced. Without
    // this, every later fsync of the file is wasted: after the cut there is no file to hold
    // the synced records, and every acked message is gone at once.
    disk.sync_dir()
    //~ broken:
    //~ disk.create(LOG_FILE)
    //~ end
}

/// Every whole record in the log, in order. Stops at the first record that is cut short or
/// whose checksum does not match.
pub fn recover(disk: &Disk) -> io::Result<Vec<Vec<u8>>> {
    if !disk.exists(LOG_FILE) {
        return Ok(Vec::new());
    }
    let bytes = disk.read(LOG_FILE)?;
    let mut payloads = Vec::new();
    let mut rest = bytes.as_slice();
    //~ site: torn-tail-fatal
    // FIX: the end of the log after a power cut may be a torn record: normal, and never
    // acked (its publish did not return Ok). Recovery keeps the whole records before it and
    // stops there; an error here would keep the queue from starting after every such cut.
    while let Some((payload, after)) = decode(rest) {
    //~ broken:
    //~ while !rest.is_empty() {
    //~     let (payload, after) = decode(rest)
    //~         .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "corrupt record"))?;
    //~ end
        payloads.push(payload.to_vec());
        rest = after;
    }
    Ok(payloads)
}

/// Appends the record for `payload` to `out`.
fn encode(payload: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    if payload.len() > PAYLOAD_MAX_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a payload holds at most {PAYLOAD_MAX_BYTES} bytes"),
        ));
    }
    let length = payload.len() as u32;
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&checksum(payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// The payload of the first record in `bytes` and the bytes after it, or `None` if the
/// record is not whole (the end of the log, or a torn tail).
fn decode(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let header = bytes.get(..HEADER_BYTES)?;
    let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    //~ site: recovery-trusts-header
    // FIX: after a power cut the last record may be torn: part of its payload, or of its
    // header, never reached the disk, and the length read here can be anything. Bound it,
    // take the payload only if all of it is there, and check the checksum: only a whole,
    // matching record is a message.
    let expected = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if length > PAYLOAD_MAX_BYTES {
        return None;
    }
    let payload = bytes.get(HEADER_BYTES..HEADER_BYTES + length)?;
    if checksum(payload) != expected {
        return None;
    }
    Some((payload, &bytes[HEADER_BYTES + length..]))
    //~ broken:
    //~ let end = (HEADER_BYTES + length).min(bytes.len());
    //~ Some((&bytes[HEADER_BYTES..end], &bytes[end..]))
    //~ end
}
