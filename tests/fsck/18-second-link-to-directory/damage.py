"""/d/e is turned into a second name of directory /many (a hard link to a directory, a loop risk)."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
d, many = img.path('d'), img.path('many')
img.rewrite_inline_dir(d, [(k, many, 4, n) if n == 'e' else (k, v, t, n) for k, v, t, n in img.dir_entries(d)])
