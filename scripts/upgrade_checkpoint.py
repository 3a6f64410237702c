"""Re-sign a format-2 or -3 checkpoint as format 4: its SHA-256 covers the header as well as the weights, and the
file ends with a whole-file seal (every byte, zip and .npy headers included).

Format 2's digest left the header out, so an edited driver order, period, member count or sign convention could not
be detected; format 3 had no seal over the file's own bytes. This package refuses format 2, and format 3 unless
--allow-unverified is given. Run this only on a checkpoint you trust (the digest the file carries is still
verified):

    python scripts/upgrade_checkpoint.py OLD.npz NEW.npz      # NEW may equal OLD (written atomically)
"""

from __future__ import annotations

import sys

from tamrl_coupler.model.checkpoint import read_header, upgrade_checkpoint


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = upgrade_checkpoint(argv[0], argv[1])
    print(f"{out}: format_version {read_header(out)['format_version']}, sha256 {read_header(out)['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
