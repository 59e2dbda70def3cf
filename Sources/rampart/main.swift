import Foundation
import RampartCLI

exit(await RampartCommand.main(arguments: nil))
