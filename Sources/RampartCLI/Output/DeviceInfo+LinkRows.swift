import Foundation
import RampartCore

extension DeviceInfo {
    /// `device show`'s field and value rows for what the device last reported about its link and its
    /// servicing data; empty when it reported neither.
    package var linkRows: [[String]] {
        (link?.rows ?? []) + (dataUsage.map { [["Servicing data this month", $0.summary]] } ?? [])
    }
}
