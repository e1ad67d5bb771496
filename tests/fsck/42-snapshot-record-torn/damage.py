"""Snapshot B of /c (the head of its list) is torn: its checksum fails."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
img.flip(img.snap_named(img.path('c'), "B"), 0x300)
