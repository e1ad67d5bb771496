"""/b's inode block carries another datastore's UUID."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
ino = img.path('b')
blk = img.read(ino)
blk[0x18] ^= 1
img.write(ino, blk)
