"""slot 0's host record is damaged."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
img.f.seek(img.hostrec_off(0) + 0x40)
img.f.write(b'\x99' * 16)
img.f.flush()
