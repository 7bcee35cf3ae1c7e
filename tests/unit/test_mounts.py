"""Which filesystem the journal's folder is on (``/proc/self/mountinfo``), and which of them
the journal must not live on."""

from __future__ import annotations

from pathlib import Path

from xnatsync.mounts import filesystem_of, network_filesystem, parse_mountinfo

# Lines as a Linux kernel writes them (fields: id parent major:minor root point options
# [optional fields] - type source super-options); a space in a path is written \040.
TABLE = """\
22 1 0:21 / / rw,relatime shared:1 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
30 22 0:40 / /home rw,relatime shared:12 - nfs4 fs1:/export/home rw,vers=4.2
31 22 0:41 / /lustre/scratch rw,relatime - lustre 10.0.0.1@o2ib:/scratch rw,flock
32 22 0:42 / /gpfs rw,relatime - gpfs gpfs0 rw
33 22 0:43 / /mnt/lab\\040share rw,relatime - cifs //nas/lab rw,vers=3.0
34 22 259:2 / /scratch/local rw,relatime - ext4 /dev/nvme0n1p2 rw
35 31 259:3 / /lustre/scratch/node-tmp rw,relatime - xfs /dev/sdb1 rw
36 22 0:44 / /home2 rw,relatime - ext4 /dev/sda3 rw
garbage line without the separator
"""


def test_mount_points_and_types_are_read_with_escapes() -> None:
    mounts = parse_mountinfo(TABLE)
    assert [(m.point, m.fstype) for m in mounts][:5] == [
        ("/", "overlay"),
        ("/home", "nfs4"),
        ("/lustre/scratch", "lustre"),
        ("/gpfs", "gpfs"),
        ("/mnt/lab share", "cifs"),
    ]
    assert len(mounts) == 8


def test_the_longest_mount_point_containing_the_path_decides() -> None:
    mounts = parse_mountinfo(TABLE)

    def fstype(path: str) -> str | None:
        mount = filesystem_of(path, mounts)
        return None if mount is None else mount.fstype

    assert fstype("/home/ana/mirror/.xnatsync") == "nfs4"
    assert fstype("/home2/ana") == "ext4"  # /home is a prefix of the text, not of the path
    assert fstype("/lustre/scratch/ana") == "lustre"
    assert fstype("/lustre/scratch/node-tmp/j") == "xfs"  # a local disk mounted inside Lustre
    assert fstype("/mnt/lab share/x") == "cifs"
    assert fstype("/tmp/x") == "overlay"
    assert filesystem_of("/x", []) is None


def test_network_filesystems_are_named_and_local_ones_are_not(tmp_path: Path) -> None:
    for folder, kind in [
        ("/home/ana/m/.xnatsync", "nfs4"),
        ("/lustre/scratch/m/.xnatsync", "lustre"),
        ("/gpfs/projects/m", "gpfs"),
        ("/mnt/lab share/m", "cifs"),
    ]:
        mount = network_filesystem(Path(folder), TABLE)
        assert mount is not None, folder
        assert mount.fstype == kind
    for folder in ("/scratch/local/j", "/lustre/scratch/node-tmp/j", "/home2/m", "/tmp/j"):
        assert network_filesystem(Path(folder), TABLE) is None, folder
    assert network_filesystem(Path("/home/x"), "") is None  # no mount table: nothing known


def test_a_folder_reached_through_a_symlink_is_judged_where_it_leads(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    table = f"1 0 0:1 / / rw - ext4 /dev/sda1 rw\n2 1 0:2 / {real} rw - nfs server:/x rw\n"
    mount = network_filesystem(tmp_path / "link" / "not-yet" / ".xnatsync", table)
    assert mount is not None
    assert mount.fstype == "nfs"
