"""/c's snapshot list starts at a free sub-block instead of snapshot B."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
c = img.path('c')
pools = [img.block_unit(b) for b in range(img.rc_blocks) if img.rc_ref(b) == 0xFFFF]
free = next(p + u for p in pools for u in range(1, img.upb) if img.get_u(p, 0x100 + 2 * u, "<H") == 0)
img.set_snap(c, "head", free)
