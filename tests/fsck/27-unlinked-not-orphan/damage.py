"""/b has no name and a link count of 0, and no orphan list holds it."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
ino = img.path('b')
img.rewrite_inline_dir(img.root, [e for e in img.dir_entries(img.root) if e[3] != 'b'])
img.set_u(ino, 0x7C, '<I', 0)
