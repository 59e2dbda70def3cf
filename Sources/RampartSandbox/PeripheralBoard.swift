import Synchronization

/// The peripherals apps reach through `Gpio`, `Uart`, `I2cMaster`, `SpiMaster`, `Adc` and `Pwm`. The
/// sandbox has checked the capability before it calls any of these; a board answers `nil` or `false` for
/// hardware it does not have. ``VirtualPeripheralBoard`` serves tests and the demo; a board backed by
/// Linux character devices (`/dev/gpiochip*`, `/dev/tty*`, `/dev/i2c-*`, `/dev/spidev*`, IIO, PWM sysfs)
/// plugs in here.
public protocol PeripheralBoard: Sendable {
    /// Sets an output pin. Returns false if there is no such pin.
    func gpioSet(pin: Int, high: Bool) -> Bool
    /// Reads a pin, or nil if there is no such pin.
    func gpioGet(pin: Int) -> Bool?
    /// Writes bytes to a UART; returns how many were taken, or nil if there is no such UART.
    func uartWrite(uart: Int, bytes: [UInt8]) -> Int?
    /// Reads up to `maximum` bytes that have arrived, or nil if there is no such UART.
    func uartRead(uart: Int, maximum: Int) -> [UInt8]?
    /// Writes then reads on an I2C bus; nil if the bus does not exist or no device answers.
    func i2cTransfer(bus: Int, address: Int, write: [UInt8], readCount: Int) -> [UInt8]?
    /// A full-duplex SPI transfer; nil if there is no such bus.
    func spiTransfer(bus: Int, write: [UInt8], readCount: Int) -> [UInt8]?
    /// A conversion, or nil if there is no such channel.
    func adcRead(controller: Int, channel: Int) -> Int?
    /// Sets a PWM output; false if there is no such channel.
    func pwmSet(controller: Int, channel: Int, periodMicroseconds: Int, dutyMicroseconds: Int) -> Bool
}

/// A board that exists only in memory, which tests drive and observe: 32 GPIO pins, 4 UARTs, 2 I2C buses,
/// 2 SPI buses, 2 ADCs with 8 channels and 2 PWM controllers with 4 channels.
public final class VirtualPeripheralBoard: PeripheralBoard {
    struct State {
        var pins: [Int: Bool] = [:]
        var pinWrites: [(pin: Int, high: Bool)] = []
        var uartOut: [Int: [UInt8]] = [:]
        var uartIn: [Int: [UInt8]] = [:]
        var i2cDevices: [Int: [Int: [UInt8]]] = [:]
        var spiLoopback: [Int: [UInt8]] = [:]
        var adc: [Int: [Int: Int]] = [:]
        var pwm: [Int: [Int: (period: Int, duty: Int)]] = [:]
    }
    private let state = Mutex(State())

    /// An empty board: pins low, no I2C devices, ADC channels at 0.
    public init() {}

    static let pins = 0..<32
    static let uarts = 0..<4
    static let buses = 0..<2
    static let channels = 0..<8

    public func gpioSet(pin: Int, high: Bool) -> Bool {
        guard Self.pins.contains(pin) else { return false }
        state.withLock {
            $0.pins[pin] = high
            if $0.pinWrites.count < 10_000 { $0.pinWrites.append((pin, high)) }
        }
        return true
    }

    public func gpioGet(pin: Int) -> Bool? {
        guard Self.pins.contains(pin) else { return nil }
        return state.withLock { $0.pins[pin] ?? false }
    }

    public func uartWrite(uart: Int, bytes: [UInt8]) -> Int? {
        guard Self.uarts.contains(uart) else { return nil }
        // Keeps the last 64 KiB, as a real UART's listener would have drained the rest.
        state.withLock {
            var output = $0.uartOut[uart, default: []]
            output.append(contentsOf: bytes.suffix(65_536))
            if output.count > 65_536 { output.removeFirst(output.count - 65_536) }
            $0.uartOut[uart] = output
        }
        return bytes.count
    }

    public func uartRead(uart: Int, maximum: Int) -> [UInt8]? {
        guard Self.uarts.contains(uart) else { return nil }
        return state.withLock {
            let waiting = $0.uartIn[uart, default: []]
            let taken = Array(waiting.prefix(maximum))
            $0.uartIn[uart] = Array(waiting.dropFirst(taken.count))
            return taken
        }
    }

    public func i2cTransfer(bus: Int, address: Int, write: [UInt8], readCount: Int) -> [UInt8]? {
        guard Self.buses.contains(bus) else { return nil }
        return state.withLock { state -> [UInt8]? in
            guard let registers = state.i2cDevices[bus]?[address] else { return nil }
            // A register-file device: the first byte written selects the register; reads continue from it.
            let start = Int(write.first ?? 0)
            return (0..<readCount).map { registers.indices.contains(start + $0) ? registers[start + $0] : 0xFF }
        }
    }

    public func spiTransfer(bus: Int, write: [UInt8], readCount: Int) -> [UInt8]? {
        guard Self.buses.contains(bus) else { return nil }
        // Loopback: MISO echoes what MOSI sent in the previous transfer.
        return state.withLock { state in
            let previous = state.spiLoopback[bus, default: []]
            state.spiLoopback[bus] = write
            return (0..<readCount).map { previous.indices.contains($0) ? previous[$0] : 0 }
        }
    }

    public func adcRead(controller: Int, channel: Int) -> Int? {
        guard Self.buses.contains(controller), Self.channels.contains(channel) else { return nil }
        return state.withLock { $0.adc[controller]?[channel] ?? 0 }
    }

    public func pwmSet(controller: Int, channel: Int, periodMicroseconds: Int, dutyMicroseconds: Int) -> Bool {
        guard Self.buses.contains(controller), (0..<4).contains(channel) else { return false }
        state.withLock { $0.pwm[controller, default: [:]][channel] = (periodMicroseconds, dutyMicroseconds) }
        return true
    }

    // MARK: Driving and observing, for tests and the demo

    /// The level of a pin.
    public func level(pin: Int) -> Bool { state.withLock { $0.pins[pin] ?? false } }
    /// Every write to a pin, in order (the first 10,000).
    public func writes(pin: Int) -> [Bool] { state.withLock { $0.pinWrites.filter { $0.pin == pin }.map(\.high) } }
    /// Drives an input pin.
    public func drive(pin: Int, high: Bool) { state.withLock { $0.pins[pin] = high } }
    /// What apps have written to a UART.
    public func uartOutput(_ uart: Int) -> [UInt8] { state.withLock { $0.uartOut[uart, default: []] } }
    /// Bytes that arrive on a UART, for apps to read.
    public func receive(uart: Int, bytes: [UInt8]) { state.withLock { $0.uartIn[uart, default: []].append(contentsOf: bytes) } }
    /// Attaches a register-file device to an I2C bus.
    public func attachI2CDevice(bus: Int, address: Int, registers: [UInt8]) {
        state.withLock { $0.i2cDevices[bus, default: [:]][address] = registers }
    }
    /// Sets what an ADC channel reads.
    public func setADC(controller: Int, channel: Int, value: Int) { state.withLock { $0.adc[controller, default: [:]][channel] = value } }
    /// The last setting of a PWM channel.
    public func pwm(controller: Int, channel: Int) -> (periodMicroseconds: Int, dutyMicroseconds: Int)? {
        state.withLock { state in state.pwm[controller]?[channel].map { ($0.period, $0.duty) } }
    }
}
