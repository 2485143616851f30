extern "C" int plugin_run();

int main() {
  return plugin_run() == 5 ? 0 : 1;
}
