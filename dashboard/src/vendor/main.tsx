import { render } from 'preact';
import '../styles/index.css';
import { App } from "./App";

const root = document.getElementById('app');
if (root) {
  root.textContent = '';
  render(<App />, root);
}
