"""Snapshot A of /c names B as its parent, while B's parent is A."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
c = img.path('c')
a, b = img.snap_named(c, "A"), img.snap_named(c, "B")
img.set_snap(a, "parent", b)
