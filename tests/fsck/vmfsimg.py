"""Small helpers for the fsck corruption cases: read and patch metadata blocks of
a vmfs image by the layout in docs/FORMAT.md, recomputing crc32c when asked."""
import struct, sys

UNIT = 4096

def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t
_T = _crc_table()

def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _T[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF

class Image:
    def __init__(self, path):
        self.f = open(path, "r+b")
        sb = self.read(0)
        self.block_shift, self.rc_blocks = struct.unpack_from("<II", sb, 0xA8)
        self.nblocks, self.data_off, self.rc_count, self.rc_inited, self.rc_table_off = struct.unpack_from("<QQQQQ", sb, 0xB0)
        self.root, = struct.unpack_from("<Q", sb, 0x108)
        self.upb = (1 << self.block_shift) // UNIT
        self.data_unit = self.data_off // UNIT

    def read(self, unit):
        self.f.seek(unit * UNIT)
        return bytearray(self.f.read(UNIT))

    def write(self, unit, blk, fix_crc=True):
        if fix_crc:
            struct.pack_into("<I", blk, 0xFFC, crc32c(bytes(blk[:0xFFC])))
        self.f.seek(unit * UNIT)
        self.f.write(blk)
        self.f.flush()

    def rc_unit(self, rc):
        return self.rc_table_off // UNIT + rc

    def block_unit(self, blk):
        return self.data_unit + blk * self.upb

    def inode(self, ino):
        return self.read(ino)

    def dir_entries(self, ino):
        """Entries of an inline directory: [(key, ino, type, name)]."""
        blk = self.read(ino)
        count, used, level = struct.unpack_from("<HHB", blk, 0x7F0)
        off, out = 0x7F8, []
        for _ in range(count):
            key, val, typ, nl = struct.unpack_from("<QQBB", blk, off)
            out.append((key, val, typ, bytes(blk[off + 18:off + 18 + nl]).decode()))
            off += 18 + nl
        return out

    def lookup(self, dir_ino, name):
        for key, ino, typ, n in self.dir_entries(dir_ino):
            if n == name:
                return ino
        raise KeyError(name)

    # --- conveniences for the corruption cases ---
    def set_u(self, unit, off, fmt, value, fix_crc=True):
        b = self.read(unit)
        struct.pack_into(fmt, b, off, value)
        self.write(unit, b, fix_crc)

    def get_u(self, unit, off, fmt):
        return struct.unpack_from(fmt, self.read(unit), off)[0]

    def flip(self, unit, off):
        b = self.read(unit)
        b[off] ^= 0x5A
        self.write(unit, b, False)

    def path(self, p):
        ino = self.root
        for part in [x for x in p.split("/") if x]:
            ino = self.lookup(ino, part)
        return ino

    def root_ptr(self, ino, i=0):
        return self.get_u(ino, 0x7F0 + 8 * i, "<Q")

    def rewrite_inline_dir(self, ino, entries):
        blk = self.read(ino)
        items = b"".join(struct.pack("<QQBB", k, v, t, len(n)) + n.encode() for k, v, t, n in entries)
        blk[0x7F8:0x7F8 + 2040] = items + bytes(2040 - len(items))
        struct.pack_into("<HHB", blk, 0x7F0, len(entries), len(items), 0)
        self.write(ino, blk)

    def hostrec_off(self, slot=0):
        sb = self.read(0)
        hosttab, = struct.unpack_from("<Q", sb, 0xE8)
        ss, = struct.unpack_from("<I", sb, 0xE4)
        return hosttab + slot * ss

    def journal_unit(self, slot=0):
        self.f.seek(self.hostrec_off(slot) + 0x20)
        return struct.unpack("<Q", self.f.read(8))[0]

    def rc_ref(self, blk):
        return self.get_u(self.rc_unit(blk // self.rc_blocks), 0x100 + 2 * (blk % self.rc_blocks), "<H")

    def set_rc_ref(self, blk, v):
        self.set_u(self.rc_unit(blk // self.rc_blocks), 0x100 + 2 * (blk % self.rc_blocks), "<H", v)

    def unit_block(self, unit):
        return (unit - self.data_unit) // self.upb

    # i_snap (struct vmfs_snap_disk at 0x180): le64 head, next, parent, file, id; le32 count
    SNAP = {"head": (0x180, "<Q"), "next": (0x188, "<Q"), "parent": (0x190, "<Q"), "file": (0x198, "<Q"),
            "id": (0x1A0, "<Q"), "count": (0x1A8, "<I")}

    def snap(self, ino, field):
        off, fmt = self.SNAP[field]
        return self.get_u(ino, off, fmt)

    def set_snap(self, ino, field, value):
        off, fmt = self.SNAP[field]
        self.set_u(ino, off, fmt, value)

    def snapshots(self, ino):
        """The snapshot inodes on ino's list, newest first."""
        out, s = [], self.snap(ino, "head")
        while s:
            out.append(s)
            s = self.snap(s, "next")
        return out

    def snap_named(self, ino, name):
        for s in self.snapshots(ino):
            if bytes(self.read(s)[0x1C0:0x2C0]).rstrip(b"\0").decode() == name:
                return s
        raise KeyError(name)


def data_extents(fd):
    """(start, end) of every data extent of an open file, by SEEK_DATA/SEEK_HOLE."""
    import os
    size, off = os.fstat(fd).st_size, 0
    while off < size:
        try:
            off = os.lseek(fd, off, os.SEEK_DATA)
        except OSError:
            return
        end = os.lseek(fd, off, os.SEEK_HOLE)
        yield off, end
        off = end


def sparse_sha256(path):
    """sha256 over (offset, bytes) of every data extent: equal for equal files, cheap for sparse ones."""
    import hashlib, os
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        h.update(str(os.fstat(fd).st_size).encode())
        for off, end in data_extents(fd):
            h.update(str(off).encode())
            while off < end:
                chunk = os.pread(fd, min(1 << 20, end - off), off)
                h.update(chunk)
                off += len(chunk)
    finally:
        os.close(fd)
    return h.hexdigest()


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "sha":
    print(sparse_sha256(sys.argv[2]))
