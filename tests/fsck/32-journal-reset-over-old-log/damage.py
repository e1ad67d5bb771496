"""the journal superblock is garbage and the third transaction of the log is
torn: the log still holds the journal's first transactions, sequence 1 at
position 0. A reset that starts the log at sequence 1 again makes the next
replay apply the first two as new, putting old blocks back (found by
vmfs-flip -P on issue 14's datastore)."""
import struct, sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
j = img.journal_unit(0)
img.write(j, bytearray(b'\xee' * 4096), False)
pos, commits = j + 2, 0
while commits < 3:
    if bytes(img.read(pos)[:4]) == b'VMJC':
        commits += 1
    pos += 1
img.flip(pos - 1, 0x40)
