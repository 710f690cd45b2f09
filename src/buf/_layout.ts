/**
 * Shared-memory layouts of the buffer core: the buffer record, the attachment record and the handle
 * record, each a slot of one of the domain's tables (`buf`, `attach`, `handle`). Internal.
 *
 * Words 0–1 of every slot (LINK, GEN) belong to the SlotTable. Word offsets below are from the
 * slot base; 64-bit fields sit at even offsets (slot sizes are even).
 *
 * ## Buffer record (`buf` table, {@link BUF_SLOT_WORDS} words) — the kernel's `struct dma_buf` +
 * its `struct file`
 * ```
 *  2 REFS        file refcount: handles + references + armed poll callbacks + tickets in flight.
 *                Atomic add/sub; tryGet is a CAS from n > 0. The thread that takes it to 0 owns
 *                the release.
 *  3 STATE       0 initializing/free │ 1 LIVE (on the global list) │ 2 DYING (off the list, release
 *                running) │ 3 DEAD. Written by the exporter (→ LIVE) and the releaser.
 *  4 HOME        exporter's home thread (written once)
 *  5 FFLAGS      file flags: O_ACCMODE | O_NONBLOCK (written once)
 *  6 BFLAGS      B_* bits below; REVOKED and HOME_DEAD set later by atomic OR
 *  7 EXPNAME     string id of exp_name (written once)
 *  8 SIZE        f64, bytes (written once)
 * 10 INODE       f64, unique and monotonic (written once)
 * 12 RESV_SLOT   13 RESV_GEN: the reservation object (written once)
 * 14 ATT_HEAD    first attachment record (0 = none)      ┐ changed only under the
 * 15 ATT_COUNT   number of attachments on the list        ┘ reservation lock
 * 16 VMAP_COUNT  vmapping_counter                         ┐
 * 17 VMAP_OWNER  thread holding the exporter's vmap       │ under the reservation lock
 * 18 VMAP_GEN    bumped on each first vmap                ┘
 * 19 POLL_IN     thread whose EPOLLIN callback is armed (0 = none)   CAS 0 → thread, store 0
 * 20 POLL_OUT    same for EPOLLOUT
 * 21 POLL_SEQ    bumped (and notified) whenever a poll callback fires; async pollers wait here
 * 22 NAME_SEQ    seqlock: odd while a writer copies the name in; writers serialize by CAS
 * 23 NAME_LEN    0 = no name, else byte length + 1
 * 24..31 NAME    up to 31 UTF-8 bytes (DMA_BUF_NAME_LEN - 1)
 * 32 EXPKIND     string id of the shared-exporter kind (0: thread-bound exporter)
 * 33 VMAP_LIVE   1 while the exporter holds its vmap (stored after its vmap returned); whoever
 *               CASes it 1 → 0 calls the exporter's vunmap, so that it runs once per vmap
 *               whichever of a last vunmap, a retire or an exit cleanup gets there
 * 34..39 EXP     six words the exporter may use (DmaBuf#exporterWords)
 * ```
 * A concurrent reader of a LIVE record sees the written-once fields (they are stored before STATE
 * becomes LIVE and REFS becomes 1). The name is read with the seqlock and is never torn.
 *
 * ## Attachment record (`attach` table, 16 words) — `struct dma_buf_attachment`
 * ```
 *  2 BUF_SLOT   3 BUF_GEN   the buffer (written once)
 *  4 NEXT       next attachment of the same buffer (under the reservation lock)
 *  5 THREAD     importer's thread (written once)
 *  6 AFLAGS     AF_* bits (LISTED under the reservation lock; EXP_ATTACHED set by OR where the
 *               exporter's attach ran, cleared by AND where its detach is about to run, by
 *               whoever gets there first; others written once)
 *  7 DEVNAME    string id of the device's name (written once)
 *  8 MAPS       live mappings (map − unmap); revoke waits for 0 here (notified on decrement)
 *  9 PINS       explicit pins of a dynamic importer (pin − unpin)
 * 10 INVAL_SEQ  bumped by invalidateMappings; a mapping made at another value is stale
 * 11 STAGE      where the importer's thread is in a map or unmap whose exporter ops run in it
 *               (a shared exporter's): MAP_PINNED (pinned for a map not counted in MAPS yet) or
 *               UNMAPPING (unmap called for a mapping MAPS still counts), else 0. Written by the
 *               importer under the reservation lock; read by the exit cleanup of a dead one
 * 12..15 EXP    four words the exporter may use
 * ```
 *
 * ## Handle record (`handle` table, 8 words) — what a thread holds, for thread-exit cleanup
 * ```
 *  2 THREAD     owner thread (0 for a ticket in flight)
 *  3 KIND       H_FD │ H_HOLD │ H_TICKET (0 once a ticket is claimed) │ H_VMAP
 *  4 BUF_SLOT   5 BUF_GEN
 *  6 VALUE      H_FD: the fd number; H_HOLD: references held; H_TICKET: a random nonce;
 *               H_VMAP: vmaps of the buffer this thread holds (its share of VMAP_COUNT)
 *  7 FLAGS      H_FD: fd flags (O_CLOEXEC | O_ACCMODE); H_TICKET: access mode
 * ```
 * A thread writes only its own records (THREAD = itself); the exit hook of a dead thread reads
 * them. A ticket is written by the sharing thread and claimed (KIND CAS → 0) by the installing one.
 */

export const BUF_SLOT_WORDS = 40;

export const B_REFS = 2;
export const B_STATE = 3;
export const B_HOME = 4;
export const B_FFLAGS = 5;
export const B_BFLAGS = 6;
export const B_EXPNAME = 7;
export const B_SIZE = 8;
export const B_INODE = 10;
export const B_RESV_SLOT = 12;
export const B_RESV_GEN = 13;
export const B_ATT_HEAD = 14;
export const B_ATT_COUNT = 15;
export const B_VMAP_COUNT = 16;
export const B_VMAP_OWNER = 17;
export const B_VMAP_GEN = 18;
export const B_POLL_IN = 19;
export const B_POLL_OUT = 20;
export const B_POLL_SEQ = 21;
export const B_NAME_SEQ = 22;
export const B_NAME_LEN = 23;
export const B_NAME = 24;
export const B_NAME_WORDS = 8;
export const B_EXPKIND = 32;
export const B_VMAP_LIVE = 33;
export const B_EXP = 34;
export const B_EXP_WORDS = 6;

export const STATE_INIT = 0;
export const STATE_LIVE = 1;
export const STATE_DYING = 2;
export const STATE_DEAD = 3;

/** The exporter has pin/unpin (dma_buf_is_dynamic). */
export const BF_DYNAMIC = 1;
/** The reservation object is the buffer's own (finalized at release). */
export const BF_EMBEDDED_RESV = 2;
/** The exporter's ops can be rebuilt in any thread from the buffer's descriptor. */
export const BF_SHAREABLE = 4;
/** The buffer was revoked: attach, map and mmap fail with ENODEV. */
export const BF_REVOKED = 8;
/** The home thread has exited: a thread-bound exporter can no longer be reached. */
export const BF_HOME_DEAD = 16;
export const BF_HAS_MMAP = 32;
export const BF_HAS_VMAP = 64;
/** The exporter has beginCpuAccess or endCpuAccess. */
export const BF_HAS_CPU = 128;

export const ATTACH_SLOT_WORDS = 16;

export const A_BUF_SLOT = 2;
export const A_BUF_GEN = 3;
export const A_NEXT = 4;
export const A_THREAD = 5;
export const A_FLAGS = 6;
export const A_DEVNAME = 7;
export const A_MAPS = 8;
export const A_PINS = 9;
export const A_INVAL_SEQ = 10;
export const A_STAGE = 11;
export const A_EXP = 12;
export const A_EXP_WORDS = 4;

export const AF_DYNAMIC = 1;
export const AF_P2P = 2;
export const AF_INVALIDATE = 4;
export const AF_LISTED = 8;
/** The exporter's attach op ran and succeeded (set right after, where it ran): detach is owed. */
export const AF_EXP_ATTACHED = 16;

/** A_STAGE: the exporter pinned for a map that MAPS does not count yet (the unpin is owed). */
export const STAGE_MAP_PINNED = 1;
/** A_STAGE: the exporter's unmap (and unpin) of a mapping MAPS still counts may have run. */
export const STAGE_UNMAPPING = 2;

export const HANDLE_SLOT_WORDS = 8;

export const H_THREAD = 2;
export const H_KIND = 3;
export const H_BUF_SLOT = 4;
export const H_BUF_GEN = 5;
export const H_VALUE = 6;
export const H_FLAGS = 7;

export const H_FD = 1;
export const H_HOLD = 2;
export const H_TICKET = 3;
export const H_VMAP = 4;
