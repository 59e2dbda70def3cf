@preconcurrency import Glibc
import RampartCLI

// Line-buffered output, so progress shows up promptly even when piped into a log.
setvbuf(stdout, nil, _IOLBF, 0)
exit(await RampartCommand.main(arguments: nil))
