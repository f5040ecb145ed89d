// placeholder so the module library has a source
