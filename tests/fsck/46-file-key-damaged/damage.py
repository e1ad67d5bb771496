"""An encrypted datastore: /b's file key (i_crypt) has a version no reader knows; the inode's crc is made right."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
ino = int(dict(line.split() for line in open(sys.argv[3]))["b"])
assert img.get_u(ino, 0x100, "<B") == 1
img.set_u(ino, 0x100, "<B", 9)
