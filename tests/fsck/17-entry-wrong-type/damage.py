"""the root's entry for /b says directory."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
img.rewrite_inline_dir(img.root, [(k, v, 4 if n == 'b' else t, n) for k, v, t, n in img.dir_entries(img.root)])
