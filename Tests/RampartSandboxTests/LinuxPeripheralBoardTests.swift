#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RampartTestKit
import Testing

@testable import RampartSandbox


/// The Linux board against what Linux would show it: sysfs trees made in a temporary directory (GPIO,
/// IIO, PWM) and a pseudoterminal for a UART. I2C and SPI need their kernel drivers, which this machine
/// lacks: only their refusals are checked here.
@Suite("Linux peripheral board")
struct LinuxPeripheralBoardTests {
    final class Tree {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-sysfs-\(UUID().uuidString)")
        func file(_ path: String, _ text: String) throws {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
        }
        func text(_ path: String) -> String? {
            (try? String(contentsOf: root.appendingPathComponent(path), encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }
        deinit { try? FileManager.default.removeItem(at: root) }
    }

    @Test("GPIO pins are sysfs files: set makes the pin an output once, get reads it, an unexported pin does not exist")
    func gpio() throws {
        let tree = Tree()
        try tree.file("gpio/gpio5/direction", "in\n")
        try tree.file("gpio/gpio5/value", "0\n")
        try tree.file("gpio/gpio6/value", "1\n")
        var configuration = LinuxPeripheralBoard.Configuration()
        configuration.gpioDirectory = tree.path("gpio")
        let board = LinuxPeripheralBoard(configuration: configuration)
        // The first set makes the pin an output at its level in one write ("high"/"low", never "out" then the level).
        #expect(board.gpioSet(pin: 5, high: true))
        #expect(tree.text("gpio/gpio5/direction") == "high" && tree.text("gpio/gpio5/value") == "0")
        try tree.file("gpio/gpio5/value", "1\n")  // what the kernel would show
        #expect(board.gpioGet(pin: 5) == true)
        try tree.file("gpio/gpio5/direction", "in\n")  // later sets write only the value
        #expect(board.gpioSet(pin: 5, high: false) && tree.text("gpio/gpio5/value") == "0" && tree.text("gpio/gpio5/direction") == "in")
        #expect(board.gpioGet(pin: 6) == true)
        #expect(board.gpioGet(pin: 7) == nil && !board.gpioSet(pin: 7, high: true))
        #expect(board.gpioGet(pin: -1) == nil && board.gpioGet(pin: 5000) == nil)
        try tree.file("gpio/gpio6/value", "garbage")
        #expect(board.gpioGet(pin: 6) == nil)
        #expect(LinuxPeripheralBoard(configuration: .init()).gpioGet(pin: 5) == nil)  // no GPIO mapped
    }

    @Test("ADC channels are IIO raw values; PWM channels are exported and set in nanoseconds, duty first to 0")
    func adcAndPWM() throws {
        let tree = Tree()
        try tree.file("iio0/in_voltage2_raw", "1234\n")
        try tree.file("iio0/in_voltage3_raw", "not a number\n")
        try tree.file("pwmchip0/export", "")
        for name in ["period", "duty_cycle", "enable"] { try tree.file("pwmchip0/pwm1/\(name)", "0\n") }
        var configuration = LinuxPeripheralBoard.Configuration()
        configuration.adcDevices = [tree.path("iio0")]
        configuration.pwmChips = [tree.path("pwmchip0")]
        let board = LinuxPeripheralBoard(configuration: configuration)
        #expect(board.adcRead(controller: 0, channel: 2) == 1234)
        #expect(board.adcRead(controller: 0, channel: 3) == nil)
        #expect(board.adcRead(controller: 0, channel: 4) == nil)
        #expect(board.adcRead(controller: 1, channel: 2) == nil)
        #expect(board.pwmSet(controller: 0, channel: 1, periodMicroseconds: 20_000, dutyMicroseconds: 1_500))
        #expect(tree.text("pwmchip0/pwm1/period") == "20000000" && tree.text("pwmchip0/pwm1/duty_cycle") == "1500000")
        #expect(tree.text("pwmchip0/pwm1/enable") == "1")
        // A period below the current duty: the duty goes to 0 first (the kernel would refuse otherwise); then both.
        #expect(board.pwmSet(controller: 0, channel: 1, periodMicroseconds: 1_000, dutyMicroseconds: 500))
        #expect(tree.text("pwmchip0/pwm1/period") == "1000000" && tree.text("pwmchip0/pwm1/duty_cycle") == "500000")
        // Channel 2 is not exported, and exporting it (here: a plain file) does not make it appear.
        #expect(!board.pwmSet(controller: 0, channel: 2, periodMicroseconds: 20_000, dutyMicroseconds: 1_000))
        #expect(tree.text("pwmchip0/export") == "2")
        #expect(!board.pwmSet(controller: 1, channel: 1, periodMicroseconds: 20_000, dutyMicroseconds: 1_000))
    }

    @Test("a UART is a raw tty: bytes written reach the other end, bytes sent from it are read, nothing waiting is empty")
    func uart() throws {
        let terminal = try Pseudoterminal()
        let (master, slave) = (terminal.master, terminal.path)
        defer { withExtendedLifetime(terminal) {} }  // its deinit closes master
        var configuration = LinuxPeripheralBoard.Configuration()
        configuration.uarts = [slave, "/nonexistent/tty"]
        configuration.uartBaud = 9_600
        let board = LinuxPeripheralBoard(configuration: configuration)
        #expect(board.uartRead(uart: 0, maximum: 16) == [])
        #expect(board.uartWrite(uart: 0, bytes: Array("AT\r\n".utf8)) == 4)
        var buffer = [UInt8](repeating: 0, count: 16)
        var received: [UInt8] = []
        for _ in 0..<50 where received.count < 4 {
            var ready = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
            if poll(&ready, 1, 100) > 0 {
                let count = buffer.withUnsafeMutableBytes { read(master, $0.baseAddress, $0.count) }
                if count > 0 { received += buffer.prefix(count) }
            }
        }
        #expect(received == Array("AT\r\n".utf8))  // raw: no \n to \r\n translation
        let reply = Array("OK\r\n".utf8)
        _ = reply.withUnsafeBytes { write(master, $0.baseAddress, $0.count) }
        var got: [UInt8] = []
        for _ in 0..<50 where got.count < 4 {
            got += board.uartRead(uart: 0, maximum: 16) ?? []
            usleep(10_000)
        }
        #expect(got == reply)
        #expect(board.uartWrite(uart: 1, bytes: [1]) == nil && board.uartRead(uart: 1, maximum: 1) == nil)
        #expect(board.uartWrite(uart: 2, bytes: [1]) == nil)
    }

    @Test("I2C and SPI refuse what is not their device: unmapped, missing, not a character device, a bad address")
    func i2cAndSPIRefusals() throws {
        let tree = Tree()
        try tree.file("i2c-1", "")
        try tree.file("spidev0.0", "")
        var configuration = LinuxPeripheralBoard.Configuration()
        configuration.i2cBuses = [tree.path("i2c-1"), "/nonexistent/i2c-9"]
        configuration.spiBuses = [tree.path("spidev0.0")]
        let board = LinuxPeripheralBoard(configuration: configuration)
        #expect(board.i2cTransfer(bus: 0, address: 0x48, write: [0], readCount: 2) == nil)  // ioctl: not a tty/driver
        #expect(board.i2cTransfer(bus: 1, address: 0x48, write: [0], readCount: 2) == nil)
        #expect(board.i2cTransfer(bus: 2, address: 0x48, write: [0], readCount: 2) == nil)
        #expect(board.i2cTransfer(bus: 0, address: 0x80, write: [0], readCount: 2) == nil)
        #expect(board.spiTransfer(bus: 0, write: [1, 2], readCount: 2) == nil)
        #expect(board.spiTransfer(bus: 1, write: [1, 2], readCount: 2) == nil)
        #expect(board.spiTransfer(bus: 0, write: [], readCount: 0) == [])
        // The structures the kernel reads have its layout.
        #expect(MemoryLayout<LinuxPeripheralBoard.I2CMessage>.size == 16)
        #expect(MemoryLayout<LinuxPeripheralBoard.I2CTransfer>.size == 16)
        #expect(MemoryLayout<LinuxPeripheralBoard.SPITransfer>.size == 32)
    }
}
