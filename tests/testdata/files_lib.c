/* files_lib: a small shared library for the dlopen case of
 * files_subject. Its code and read-only data come from its file; its
 * table is built at load time in its own writable pages. */
static unsigned long table[256];

__attribute__((constructor)) static void init(void)
{
	for (unsigned long i = 0; i < 256; i++)
		table[i] = i * i;
}

unsigned long files_lib_value(unsigned long x)
{
	unsigned long h = x;
	for (int i = 0; i < 256; i++)
		h = h * 31 + table[i];
	return h;
}
