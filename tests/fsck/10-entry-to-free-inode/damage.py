"""/a2 names a sub-block that holds no inode."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
ents = img.dir_entries(img.root)
img.rewrite_inline_dir(img.root, [(k, img.data_unit + img.upb - 1 if n == 'a2' else v, t, n) for k, v, t, n in ents])
