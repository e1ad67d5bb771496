"""An encrypted datastore: the primary copy of keyslot 0 (unit 16) is torn; its backup (unit 32) is intact."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
assert img.get_u(16, 0, "<I") == 0x534b4d56  # "VMKS"
img.flip(16, 0x80)  # in the wrapped key: the crc catches it
