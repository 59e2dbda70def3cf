#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// Peripherals through Linux's own interfaces, as `device.toml`'s `[peripherals]` maps them: GPIO pins as
/// sysfs `gpioN/value` files, UARTs as tty devices in raw mode, I2C buses as `/dev/i2c-N` (`I2C_RDWR`),
/// SPI buses as `/dev/spidevB.C` (`SPI_IOC_MESSAGE`), ADCs as IIO devices (`in_voltageN_raw`) and PWM
/// controllers as sysfs `pwmchipN`. An app's index (UART 0, I2C bus 1, …) is a position in its list;
/// anything not mapped, or that the kernel refuses, is "no such peripheral" to the app.
///
/// The manifest's capability was checked before any call reaches a board. The runtime opens only the paths
/// the device's owner listed.
public final class LinuxPeripheralBoard: PeripheralBoard {
    /// `[peripherals]` in `device.toml`.
    public struct Configuration: Sendable, Equatable {
        /// The sysfs GPIO directory (`/sys/class/gpio`): pin N is `gpioN` in it, exported by the system.
        public var gpioDirectory: String?
        /// UART devices, by index.
        public var uarts: [String] = []
        /// The UARTs' speed.
        public var uartBaud = 115_200
        /// I2C bus devices (`/dev/i2c-1`), by index.
        public var i2cBuses: [String] = []
        /// SPI devices (`/dev/spidev0.0`), by index.
        public var spiBuses: [String] = []
        /// IIO device directories (`/sys/bus/iio/devices/iio:device0`), by controller.
        public var adcDevices: [String] = []
        /// PWM chip directories (`/sys/class/pwm/pwmchip0`), by controller.
        public var pwmChips: [String] = []
        public init() {}

        /// The speeds a UART may be set to.
        public static let baudRates: [Int: speed_t] = [
            9_600: speed_t(B9600), 19_200: speed_t(B19200), 38_400: speed_t(B38400), 57_600: speed_t(B57600),
            115_200: speed_t(B115200), 230_400: speed_t(B230400), 460_800: speed_t(B460800), 921_600: speed_t(B921600),
        ]
    }

    public let configuration: Configuration
    /// Open UARTs, by index; opened on first use and kept.
    private let uartDescriptors = Mutex<[Int: Int32]>([:])
    /// Pins already set to output.
    private let outputs = Mutex<Set<Int>>([])

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    deinit {
        for descriptor in uartDescriptors.withLock({ Array($0.values) }) { close(descriptor) }
    }

    // MARK: GPIO

    public func gpioSet(pin: Int, high: Bool) -> Bool {
        guard let pinDirectory = gpioPath(pin) else { return false }
        if !outputs.withLock({ $0.contains(pin) }) {
            // "high"/"low" make the pin an output already at its level: "out" would drive it low first.
            guard Self.write(high ? "high" : "low", to: pinDirectory + "/direction") else { return false }
            outputs.withLock { _ = $0.insert(pin) }
            return true
        }
        return Self.write(high ? "1" : "0", to: pinDirectory + "/value")
    }

    public func gpioGet(pin: Int) -> Bool? {
        guard let pinDirectory = gpioPath(pin), let text = Self.read(pinDirectory + "/value") else { return nil }
        switch text {
        case "1": return true
        case "0": return false
        default: return nil
        }
    }

    private func gpioPath(_ pin: Int) -> String? {
        guard let directory = configuration.gpioDirectory, (0...4095).contains(pin) else { return nil }
        return "\(directory)/gpio\(pin)"
    }

    // MARK: UART

    public func uartWrite(uart: Int, bytes: [UInt8]) -> Int? {
        guard let descriptor = uartDescriptor(uart) else { return nil }
        let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        if written >= 0 { return written }
        return errno == EAGAIN ? 0 : nil
    }

    public func uartRead(uart: Int, maximum: Int) -> [UInt8]? {
        guard let descriptor = uartDescriptor(uart) else { return nil }
        var buffer = [UInt8](repeating: 0, count: max(0, min(maximum, 65_536)))
        let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
        if count >= 0 { return Array(buffer.prefix(count)) }
        return errno == EAGAIN ? [] : nil
    }

    /// The UART's descriptor: opened non-blocking, raw, at the configured speed.
    private func uartDescriptor(_ uart: Int) -> Int32? {
        guard configuration.uarts.indices.contains(uart) else { return nil }
        return uartDescriptors.withLock { open -> Int32? in
            if let descriptor = open[uart] { return descriptor }
            let descriptor = Glibc.open(configuration.uarts[uart], O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
            guard descriptor >= 0 else { return nil }
            var settings = termios()
            if tcgetattr(descriptor, &settings) == 0 {
                cfmakeraw(&settings)
                let speed = Configuration.baudRates[configuration.uartBaud] ?? speed_t(B115200)
                cfsetispeed(&settings, speed)
                cfsetospeed(&settings, speed)
                guard tcsetattr(descriptor, TCSANOW, &settings) == 0 else {
                    close(descriptor)
                    return nil
                }
            }
            open[uart] = descriptor
            return descriptor
        }
    }

    // MARK: I2C and SPI

    public func i2cTransfer(bus: Int, address: Int, write: [UInt8], readCount: Int) -> [UInt8]? {
        guard configuration.i2cBuses.indices.contains(bus), (0...0x7F).contains(address), !write.isEmpty || readCount > 0 else { return nil }
        let descriptor = open(configuration.i2cBuses[bus], O_RDWR | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var outgoing = write
        var incoming = [UInt8](repeating: 0, count: readCount)
        let succeeded = outgoing.withUnsafeMutableBufferPointer { out in
            incoming.withUnsafeMutableBufferPointer { into in
                var messages: [I2CMessage] = []
                if !out.isEmpty { messages.append(I2CMessage(address: UInt16(address), flags: 0, length: UInt16(out.count), buffer: out.baseAddress)) }
                if !into.isEmpty { messages.append(I2CMessage(address: UInt16(address), flags: 1, length: UInt16(into.count), buffer: into.baseAddress)) }
                return messages.withUnsafeMutableBufferPointer { list in
                    var request = I2CTransfer(messages: list.baseAddress, count: UInt32(list.count))
                    return withUnsafeMutablePointer(to: &request) { ioctl(descriptor, Self.i2cReadWrite, $0) } >= 0
                }
            }
        }
        return succeeded ? incoming : nil
    }

    public func spiTransfer(bus: Int, write: [UInt8], readCount: Int) -> [UInt8]? {
        guard configuration.spiBuses.indices.contains(bus) else { return nil }
        let length = max(write.count, readCount)
        guard length > 0 else { return [] }
        let descriptor = open(configuration.spiBuses[bus], O_RDWR | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var outgoing = write + [UInt8](repeating: 0, count: length - write.count)
        var incoming = [UInt8](repeating: 0, count: length)
        let succeeded = outgoing.withUnsafeMutableBytes { out in
            incoming.withUnsafeMutableBytes { into in
                var transfer = SPITransfer(
                    transmit: UInt64(UInt(bitPattern: out.baseAddress)), receive: UInt64(UInt(bitPattern: into.baseAddress)),
                    length: UInt32(length))
                return withUnsafeMutablePointer(to: &transfer) { ioctl(descriptor, Self.spiMessage1, $0) } >= 0
            }
        }
        return succeeded ? Array(incoming.prefix(readCount)) : nil
    }

    /// `I2C_RDWR` from `linux/i2c-dev.h`.
    static let i2cReadWrite: UInt = 0x0707
    /// `SPI_IOC_MESSAGE(1)` from `linux/spi/spidev.h`: `_IOW('k', 0, char[32])`.
    static let spiMessage1: UInt = 0x4020_6B00

    /// `struct i2c_msg`.
    struct I2CMessage {
        var address: UInt16
        var flags: UInt16
        var length: UInt16
        var buffer: UnsafeMutablePointer<UInt8>?
    }

    /// `struct i2c_rdwr_ioctl_data`.
    struct I2CTransfer {
        var messages: UnsafeMutablePointer<I2CMessage>?
        var count: UInt32
        var padding: UInt32 = 0
    }

    /// `struct spi_ioc_transfer` (32 bytes); zero speed and word size mean the device's own settings.
    struct SPITransfer {
        var transmit: UInt64
        var receive: UInt64
        var length: UInt32
        var speedHz: UInt32 = 0
        var delayMicroseconds: UInt16 = 0
        var bitsPerWord: UInt8 = 0
        var changeChipSelect: UInt8 = 0
        var transmitBits: UInt8 = 0
        var receiveBits: UInt8 = 0
        var wordDelayMicroseconds: UInt8 = 0
        var padding: UInt8 = 0
    }

    // MARK: ADC and PWM

    public func adcRead(controller: Int, channel: Int) -> Int? {
        guard configuration.adcDevices.indices.contains(controller), (0...255).contains(channel),
            let text = Self.read("\(configuration.adcDevices[controller])/in_voltage\(channel)_raw")
        else { return nil }
        return Int(text)
    }

    public func pwmSet(controller: Int, channel: Int, periodMicroseconds: Int, dutyMicroseconds: Int) -> Bool {
        guard configuration.pwmChips.indices.contains(controller), (0...255).contains(channel) else { return false }
        let chip = configuration.pwmChips[controller]
        let directory = "\(chip)/pwm\(channel)"
        if access(directory, F_OK) != 0 {
            _ = Self.write("\(channel)", to: "\(chip)/export")
            guard access(directory, F_OK) == 0 else { return false }
        }
        // The kernel refuses a period below the current duty: lower the duty first only then, so that an
        // ordinary update does not glitch the output (a servo would twitch).
        let period = periodMicroseconds * 1000
        if let current = Self.read(directory + "/duty_cycle").flatMap(Int.init), current > period {
            guard Self.write("0", to: directory + "/duty_cycle") else { return false }
        }
        return Self.write("\(period)", to: directory + "/period")
            && Self.write("\(dutyMicroseconds * 1000)", to: directory + "/duty_cycle")
            && Self.write("1", to: directory + "/enable")
    }

    // MARK: Files

    /// Writes `text` to an existing attribute file.
    static func write(_ text: String, to path: String) -> Bool {
        let descriptor = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)  // as `echo value > attribute` opens it
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) } == bytes.count
    }

    /// An attribute file's text, trimmed; nil if it cannot be read.
    static func read(_ path: String) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        return String(decoding: buffer.prefix(count), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
