"""the root's entry for /c is gone: c goes to lost+found."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
img.rewrite_inline_dir(img.root, [e for e in img.dir_entries(img.root) if e[3] != 'c'])
