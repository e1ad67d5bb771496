"""/b (a named file, nlink 1) has the ORPHAN flag but is on no orphan list
(checksum recomputed): it reads, but an unlink then takes it for listed
already and it is never freed (checked through a mount: after rm, fsck finds
the inode with no name and brings the deleted file back in /lost+found)."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
ino = img.path('b')
img.set_u(ino, 0xB8, "<I", img.get_u(ino, 0xB8, "<I") | 8)
