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
//! payload. A restart is [`recover`], then [`Log::open`]: recovery reads the records back in
//! order and stops at the first one that is not whole (the torn tail a power cut can leave
//! in the middle of a write), and the log opened again appends after the last whole record.
//!
//! The promises: every message acked by `publish` or `publish_batch` comes back from every
//! later recovery, in the order of the acks, however many times the power goes; and recovery
//! returns nothing that was not published.

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
        //~ region
        // After a power cut the log may end in a torn record. Cut it off before appending: a
        // record appended after torn bytes would be acked, yet the next recovery stops at the
        // torn bytes and never reaches it. The new length is durable with the next publish's
        // fsync; a cut before that brings back only the torn bytes, which recovery stops at.
        let bytes = disk.read(LOG_FILE)?;
        let whole_len = whole_records_len(&bytes);
        if whole_len < bytes.len() {
            disk.truncate(LOG_FILE, whole_len as u64)?;
        }
        //~ wrong: append-after-torn-tail
        //~ alt: truncate-in-recovery
        //~ end
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
        //~ wrong: sync-dir-instead-of-sync
        //~ self.disk.append(LOG_FILE, &record)?;
        //~ // The file is created and its directory entry synced: make the write durable too.
        //~ self.disk.sync_dir()
        //~ wrong: sync-before-append
        //~ // Flush whatever is pending first, so the disk is clean before the new record.
        //~ self.disk.sync(LOG_FILE)?;
        //~ self.disk.append(LOG_FILE, &record)
        //~ wrong: ignore-sync-error
        //~ self.disk.append(LOG_FILE, &record)?;
        //~ // The append worked; a failed fsync only means the OS will write it back later.
        //~ let _ = self.disk.sync(LOG_FILE);
        //~ Ok(())
        //~ wrong: retry-fsync
        //~ self.disk.append(LOG_FILE, &record)?;
        //~ // An fsync can fail now and then: try it again before giving up on the message.
        //~ let mut synced = self.disk.sync(LOG_FILE);
        //~ for _ in 0..3 {
        //~     if synced.is_ok() {
        //~         break;
        //~     }
        //~     synced = self.disk.sync(LOG_FILE);
        //~ }
        //~ synced
        //~ alt: publish-through-batch
        //~ let _ = record;
        //~ self.publish_batch(&[payload])
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
        //~ region
        let mut records = Vec::new();
        for payload in payloads {
            encode(payload, &mut records)?;
        }
        //~ alt: publish-through-batch
        //~ // One append per record, one fsync for them all: the batch is acked only once
        //~ // every record of it is durable, and a cut between two appends acks none of them.
        //~ for payload in payloads {
        //~     let mut record = Vec::new();
        //~     encode(payload, &mut record)?;
        //~     self.disk.append(LOG_FILE, &record)?;
        //~ }
        //~ end
        //~ site: ack-before-fsync
        self.disk.append(LOG_FILE, &records)?;
        // FIX: the same promise for every message in the batch, so the same fsync before the
        // ack. One fsync for the whole batch (group commit): it costs one fsync for N
        // messages instead of N, and the price is latency, since no message of the batch is
        // acked before the last one is written and the whole batch is on disk.
        self.disk.sync(LOG_FILE)
        //~ broken:
        //~ self.disk.append(LOG_FILE, &records)
        //~ wrong: sync-dir-instead-of-sync
        //~ self.disk.append(LOG_FILE, &records)?;
        //~ self.disk.sync_dir()
        //~ wrong: sync-before-append
        //~ self.disk.sync(LOG_FILE)?;
        //~ self.disk.append(LOG_FILE, &records)
        //~ wrong: ignore-sync-error
        //~ self.disk.append(LOG_FILE, &records)?;
        //~ let _ = self.disk.sync(LOG_FILE);
        //~ Ok(())
        //~ wrong: retry-fsync
        //~ self.disk.append(LOG_FILE, &records)?;
        //~ let mut synced = self.disk.sync(LOG_FILE);
        //~ for _ in 0..3 {
        //~     if synced.is_ok() {
        //~         break;
        //~     }
        //~     synced = self.disk.sync(LOG_FILE);
        //~ }
        //~ synced
        //~ wrong: sync-only-in-publish
        //~ // One write for the whole batch; publish already waits for the disk.
        //~ self.disk.append(LOG_FILE, &records)
        //~ alt: publish-through-batch
        //~ self.disk.sync(LOG_FILE)
        //~ alt: fsync-per-record
        //~ // No group commit: each message is published, and made durable, on its own. A
        //~ // failure part-way fails the batch; the messages before it are durable anyway.
        //~ drop(records);
        //~ for payload in payloads {
        //~     self.publish(payload)?;
        //~ }
        //~ Ok(())
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
    //~ region
    //~ alt: truncate-in-recovery
    //~ // Cut the torn tail off here and make the cut durable, so whatever opens the log
    //~ // next appends right after the last whole record.
    //~ let whole_len = bytes.len() - rest.len();
    //~ if whole_len < bytes.len() {
    //~     disk.truncate(LOG_FILE, whole_len as u64)?;
    //~     disk.sync(LOG_FILE)?;
    //~ }
    //~ end
    Ok(payloads)
}

/// How many bytes the whole records at the start of `bytes` take.
fn whole_records_len(bytes: &[u8]) -> usize {
    let mut rest = bytes;
    while let Some((_, after)) = decode(rest) {
        rest = after;
    }
    bytes.len() - rest.len()
}

/// Appends the record for `payload` to `out`.
fn encode(payload: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    if payload.len() > PAYLOAD_MAX_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a payload holds at most {PAYLOAD_MAX_BYTES} bytes"),
        ));
    }
    //~ region
    let length = payload.len() as u32;
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&checksum(payload).to_le_bytes());
    out.extend_from_slice(payload);
    //~ wrong: checksum-over-header-only
    //~ let length = (payload.len() as u32).to_le_bytes();
    //~ // The length is what recovery trusts, so the length is what the checksum guards.
    //~ out.extend_from_slice(&length);
    //~ out.extend_from_slice(&checksum(&length).to_le_bytes());
    //~ out.extend_from_slice(payload);
    //~ wrong: additive-checksum
    //~ let length = payload.len() as u32;
    //~ out.extend_from_slice(&length.to_le_bytes());
    //~ out.extend_from_slice(&byte_sum(payload).to_le_bytes());
    //~ out.extend_from_slice(payload);
    //~ alt: crc-over-header-and-body
    //~ // CRC-32 first, then the length, then the payload; the CRC covers length and payload.
    //~ let length = (payload.len() as u32).to_le_bytes();
    //~ out.extend_from_slice(&crc32(&[&length[..], payload]).to_le_bytes());
    //~ out.extend_from_slice(&length);
    //~ out.extend_from_slice(payload);
    //~ end
    Ok(())
}

/// The payload of the first record in `bytes` and the bytes after it, or `None` if the
/// record is not whole (the end of the log, or a torn tail).
fn decode(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    //~ site: recovery-trusts-header
    let header = bytes.get(..HEADER_BYTES)?;
    let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    // FIX: after a power cut the last record may be torn: part of its payload, or of its
    // header, never reached the disk, or came back zeroed or as garbage, and the length read
    // here can be anything. Bound it, take the payload only if all of it is there, and check
    // the checksum: only a whole, matching record is a message.
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
    //~ let header = bytes.get(..HEADER_BYTES)?;
    //~ let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    //~ let end = (HEADER_BYTES + length).min(bytes.len());
    //~ Some((&bytes[HEADER_BYTES..end], &bytes[end..]))
    //~ wrong: trust-torn-header
    //~ let header = bytes.get(..HEADER_BYTES)?;
    //~ let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    //~ // Every record is fsynced before its ack now, so the header can be trusted: take the
    //~ // payload it announces, as much of it as there is.
    //~ let end = (HEADER_BYTES + length).min(bytes.len());
    //~ Some((&bytes[HEADER_BYTES..end], &bytes[end..]))
    //~ wrong: checksum-over-header-only
    //~ let header = bytes.get(..HEADER_BYTES)?;
    //~ let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    //~ let expected = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    //~ if checksum(&header[..4]) != expected || length > PAYLOAD_MAX_BYTES {
    //~     return None;
    //~ }
    //~ let payload = bytes.get(HEADER_BYTES..HEADER_BYTES + length)?;
    //~ Some((payload, &bytes[HEADER_BYTES + length..]))
    //~ wrong: additive-checksum
    //~ let header = bytes.get(..HEADER_BYTES)?;
    //~ let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    //~ let expected = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    //~ if length > PAYLOAD_MAX_BYTES {
    //~     return None;
    //~ }
    //~ let payload = bytes.get(HEADER_BYTES..HEADER_BYTES + length)?;
    //~ if byte_sum(payload) != expected {
    //~     return None;
    //~ }
    //~ Some((payload, &bytes[HEADER_BYTES + length..]))
    //~ alt: crc-over-header-and-body
    //~ let stored = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?);
    //~ let length: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
    //~ let payload_len = u32::from_le_bytes(length) as usize;
    //~ if payload_len > PAYLOAD_MAX_BYTES {
    //~     return None;
    //~ }
    //~ let end = 8 + payload_len;
    //~ let payload = bytes.get(8..end)?;
    //~ (crc32(&[&length[..], payload]) == stored).then(|| (payload, &bytes[end..]))
    //~ end
}
//~ region
//~ wrong: additive-checksum
//~
//~ /// A checksum cheap enough for every record: the sum of its bytes.
//~ fn byte_sum(bytes: &[u8]) -> u32 {
//~     bytes
//~         .iter()
//~         .fold(0u32, |sum, byte| sum.wrapping_add(u32::from(*byte)))
//~ }
//~ alt: crc-over-header-and-body
//~
//~ /// CRC-32 (IEEE, reflected), over several slices as if they were one.
//~ fn crc32(parts: &[&[u8]]) -> u32 {
//~     let mut crc = !0u32;
//~     for byte in parts.iter().flat_map(|part| part.iter()) {
//~         crc ^= u32::from(*byte);
//~         for _ in 0..8 {
//~             crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
//~         }
//~     }
//~     !crc
//~ }
//~ end
