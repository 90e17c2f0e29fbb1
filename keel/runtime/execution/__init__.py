"""Running one attempt's task body: finding the function, calling it in a thread, on the
event loop or in a child process, and the context it sees."""
