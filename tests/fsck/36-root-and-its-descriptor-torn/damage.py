"""the root directory's inode and the descriptor of the resource cluster that
holds its pool are both torn: the pools of that cluster must be found by
their headers, or what the root named is freed with the rebuilt descriptor
(found by vmfs-flip -P, seed 14, trial 1789)."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
img.flip(img.root, 0x200)
img.flip(img.rc_unit(img.unit_block(img.root) // img.rc_blocks), 0x200)
