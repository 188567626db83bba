# A TCP listener that never calls accept(): with backlog 0 the kernel completes
# one or two handshakes, then drops further SYNs, so the next connect hangs.
# Prints the port, then waits until stdin closes or the process is killed.
import socket
import sys

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
s.listen(0)
print(s.getsockname()[1], flush=True)
sys.stdin.read()
