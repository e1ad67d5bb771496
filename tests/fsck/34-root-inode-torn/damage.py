"""the root directory's inode is torn (checksum fails): fsck used to give up
(exit 8, 'this version cannot rebuild it'); it makes the root again, empty,
links /lost+found back into it and moves what the root named there (found by
vmfs-flip -P: about one trial in a hundred gave up on it)."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
img.flip(img.root, 0x200)
